/**
 * The `mercury.server.*` settings as they apply in this window.
 *
 * In a remote window (code-server, Remote-SSH, WSL, dev containers) the extension host runs on the remote
 * machine. VS Code hands it the local User settings' values of these machine settings when it starts, and
 * drops them at the first settings change: a server path kept there worked at first, then "Restart Language
 * Server" could not find the server (measured in code-server 4.100.3). There such a value is ignored from the
 * start, and the user is told to keep it in the Remote settings, which the remote machine always reads.
 */

/** What `WorkspaceConfiguration.inspect` gives, with the two fields VS Code adds in remote windows. */
export interface SettingInspection<T> {
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
  /** The local machine's User settings (remote windows only). */
  globalLocalValue?: T;
  /** The remote machine's settings (remote windows only). */
  globalRemoteValue?: T;
}

export interface LaunchSetting<T> {
  /** The value to use; undefined: the setting's default. */
  value: T | undefined;
  /** A value found only in the local User settings of a remote window, and ignored. */
  ignoredUserValue?: T;
}

/** The value of one `mercury.server.*` setting from its inspection, in a remote window or a local one. */
export function launchSetting<T>(inspection: SettingInspection<T> | undefined, remote: boolean): LaunchSetting<T> {
  if (inspection === undefined) {
    return { value: undefined };
  }
  const { workspaceFolderValue, workspaceValue, globalValue, globalLocalValue, globalRemoteValue } = inspection;
  const fromWorkspace = workspaceFolderValue ?? workspaceValue;
  if (fromWorkspace !== undefined) {
    return { value: fromWorkspace };
  }
  if (!remote) {
    return { value: globalValue };
  }
  if (globalRemoteValue !== undefined) {
    return { value: globalRemoteValue };
  }
  if (globalLocalValue !== undefined) {
    return { value: undefined, ignoredUserValue: globalLocalValue };
  }
  return { value: globalValue };
}

/** The sentence that tells where a server setting found only in the User settings of a remote window belongs. */
export function remoteSettingAdvice(key: string): string {
  return (
    `mercury.server.${key} is set in your User settings, which this remote window reads only until a setting ` +
    `changes; set it in the Remote settings (Preferences: Open Remote Settings) instead. It is ignored until then.`
  );
}
