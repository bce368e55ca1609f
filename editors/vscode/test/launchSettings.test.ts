import { describe, expect, it } from 'vitest';
import { launchSetting, remoteSettingAdvice } from '../src/launchSettings';

describe('launchSetting', () => {
  it('takes the User (global) value in a local window, and a workspace value over it', () => {
    expect(launchSetting({ globalValue: '/u/mercury-lsp' }, false)).toEqual({ value: '/u/mercury-lsp' });
    expect(launchSetting({ globalValue: '/u', workspaceValue: '/w' }, false)).toEqual({ value: '/w' });
    expect(launchSetting({ workspaceValue: '/w', workspaceFolderValue: '/f' }, false)).toEqual({ value: '/f' });
    expect(launchSetting({}, false)).toEqual({ value: undefined });
    expect(launchSetting(undefined, true)).toEqual({ value: undefined });
  });

  it('takes the Remote settings in a remote window, over the local User settings', () => {
    const inspection = { globalLocalValue: '/local', globalRemoteValue: '/remote', globalValue: '/remote' };
    expect(launchSetting(inspection, true)).toEqual({ value: '/remote' });
  });

  it('ignores a value only the local User settings hold in a remote window, and says so', () => {
    // What code-server 4.100.3 hands the extension host at start: the User value, also as globalValue.
    expect(launchSetting({ globalLocalValue: '/local', globalValue: '/local' }, true)).toEqual({
      value: undefined,
      ignoredUserValue: '/local',
    });
    // After the first settings change it hands nothing: the same answer, so a restart behaves the same.
    expect(launchSetting({}, true)).toEqual({ value: undefined });
    expect(remoteSettingAdvice('path')).toBe(
      'mercury.server.path is set in your User settings, which this remote window reads only until a setting ' +
        'changes; set it in the Remote settings (Preferences: Open Remote Settings) instead. It is ignored until then.',
    );
  });

  it('uses a global value in a remote window that does not tell local from remote', () => {
    expect(launchSetting({ globalValue: '/g' }, true)).toEqual({ value: '/g' });
  });
});
