/**
 * The language client's trace channel, driven by `mercury.trace.server`.
 *
 * vscode-languageclient 10 traces only while its trace channel's log level is Trace, and reads the
 * `trace.server` setting only to choose between messages and verbose. The Mercury log sits at Info, so
 * `"mercury.trace.server": "messages"` alone showed nothing. This channel reports Trace whenever the
 * setting is on and writes the traffic into the Mercury log at a level that channel shows.
 */
import * as vscode from 'vscode';

export type TraceSetting = 'off' | 'messages' | 'verbose';

export function traceSetting(): TraceSetting {
  const value = vscode.workspace.getConfiguration('mercury').get<string>('trace.server');
  return value === 'messages' || value === 'verbose' ? value : 'off';
}

export class SettingTraceChannel implements vscode.LogOutputChannel {
  private readonly levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.levelChanged.event;
  private setting: TraceSetting;

  constructor(
    private readonly log: vscode.LogOutputChannel,
    private readonly read: () => TraceSetting = traceSetting,
  ) {
    this.setting = read();
  }

  get name(): string {
    return this.log.name;
  }

  get logLevel(): vscode.LogLevel {
    return this.setting === 'off' ? vscode.LogLevel.Off : vscode.LogLevel.Trace;
  }

  /** Read `mercury.trace.server` again; the client re-sends `$/setTrace` when the level changes. */
  refresh(): void {
    const before = this.logLevel;
    this.setting = this.read();
    if (this.logLevel !== before) {
      this.levelChanged.fire(this.logLevel);
    }
  }

  trace(message: string, ...args: unknown[]): void {
    if (this.setting !== 'off') {
      this.log.info(message, ...args);
    }
  }

  debug(message: string, ...args: unknown[]): void {
    this.log.debug(message, ...args);
  }

  info(message: string, ...args: unknown[]): void {
    this.log.info(message, ...args);
  }

  warn(message: string, ...args: unknown[]): void {
    this.log.warn(message, ...args);
  }

  error(error: string | Error, ...args: unknown[]): void {
    this.log.error(error, ...args);
  }

  append(value: string): void {
    this.log.append(value);
  }

  appendLine(value: string): void {
    this.log.appendLine(value);
  }

  replace(value: string): void {
    this.log.replace(value);
  }

  clear(): void {
    this.log.clear();
  }

  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === 'boolean' || columnOrPreserveFocus === undefined) {
      this.log.show(columnOrPreserveFocus);
    } else {
      this.log.show(columnOrPreserveFocus, preserveFocus);
    }
  }

  hide(): void {
    this.log.hide();
  }

  /** The Mercury log belongs to the extension, not to this view of it. */
  dispose(): void {
    this.levelChanged.dispose();
  }
}
