/** The language client's life: find the server, start it, pass settings, restart on demand. */
import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { askForSuggestionsAgain, becameReady, switchedBackOn } from './engineReady';
import { launchSetting, remoteSettingAdvice, type SettingInspection } from './launchSettings';
import { selectedInterpreter } from './pythonInterpreter';
import { findServerCommand, type ServerCommand, type ServerCommandResult } from './serverCommand';
import { stdioOptions } from './serverLog';
import { type ServerSettings, type SettingSchema, serverSettings } from './settings';
import { type MercuryStatus, STATUS_NOTIFICATION, type StatusBar } from './status';
import { SettingTraceChannel } from './traceChannel';

export const API_KEY_SECRET = 'mercury.apiKey';

/** Inline completion items the extension adds to the server's at a position (next edits on the cursor's line). */
export type ExtraInlineItems = (document: vscode.TextDocument, position: vscode.Position) => vscode.InlineCompletionItem[];

/** The `mercury.server.*` settings that apply in this window; `ignored` hears of any that do not. */
function launchSettings(ignored: (advice: string) => void): { path: string; pythonPath: string; args: string[] } {
  const config = vscode.workspace.getConfiguration('mercury.server');
  const remote = vscode.env.remoteName !== undefined;
  function read<T>(key: string, fallback: T): T {
    const setting = launchSetting(config.inspect<T>(key) as SettingInspection<T> | undefined, remote);
    if (setting.ignoredUserValue !== undefined) {
      ignored(remoteSettingAdvice(key));
    }
    return setting.value ?? fallback;
  }
  return { path: read('path', ''), pythonPath: read('pythonPath', ''), args: read<string[]>('args', []) };
}

/** Resolve the server executable from the `mercury.server.*` settings and the places Python installs it. */
async function configuredServerCommand(
  log: vscode.LogOutputChannel,
  ignored: (advice: string) => void,
): Promise<ServerCommandResult> {
  const settings = launchSettings(ignored);
  const folders = vscode.workspace.workspaceFolders ?? [];
  const serverPath = settings.path;
  const pythonPath = settings.pythonPath;
  const explicit = serverPath.trim() !== '' || pythonPath.trim() !== '';
  return findServerCommand({
    serverPath,
    pythonPath,
    args: settings.args,
    // Only asked when no setting names the server: activating the Python extension takes seconds.
    selectedInterpreter: explicit ? undefined : await selectedInterpreter(folders[0]?.uri, (line) => log.debug(line)),
    workspaceFolders: folders.map((folder) => folder.uri.fsPath),
    env: process.env,
    home: os.homedir(),
    platform: process.platform,
  });
}

/** One language client at a time, with the settings last sent to its server. */
export class ServerConnection implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private settings: ServerSettings | undefined;
  private lastStatus: MercuryStatus | undefined;
  private stopping = false;
  private readonly traceChannel: SettingTraceChannel;
  private readonly warned = new Set<string>();
  /** The start, stop or restart in progress; the next one waits for it. */
  private lifecycle: Promise<void> = Promise.resolve();

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly log: vscode.LogOutputChannel,
    private readonly statusBar: StatusBar,
    private readonly schemas: ReadonlyMap<string, SettingSchema>,
    private readonly extraInlineItems: ExtraInlineItems = () => [],
  ) {
    this.traceChannel = new SettingTraceChannel(log);
  }

  start(): Promise<void> {
    return this.serially(() => this.startClient());
  }

  stop(): Promise<void> {
    return this.serially(() => this.stopClient());
  }

  /** Stop and start again, finding the executable anew (its settings may have changed). */
  restart(): Promise<void> {
    return this.serially(async () => {
      await this.stopClient();
      await this.startClient();
    });
  }

  /**
   * One lifecycle step at a time. A settings change and "Restart" can come while a server still starts
   * (initialize takes seconds); disposing a client then leaves it half started and unable to restart.
   */
  private serially(step: () => Promise<void>): Promise<void> {
    const next = this.lifecycle.then(step);
    this.lifecycle = next.catch(() => undefined);
    return next;
  }

  private async startClient(): Promise<void> {
    const found = await configuredServerCommand(this.log, (advice) => this.warnOnce(advice));
    if ('problem' in found) {
      this.fail(found.problem);
      return;
    }
    this.settings = await this.readSettings();
    this.statusBar.setEnabled(this.settings.enabled);
    this.statusBar.reset();
    this.lastStatus = undefined;
    this.log.info(`Starting mercury-lsp from ${found.source}: ${[found.command, ...found.args].join(' ')}`);
    const client = new LanguageClient('mercury', 'Mercury', this.serverOptions(found), this.clientOptions(this.settings));
    client.onNotification(STATUS_NOTIFICATION, (status: MercuryStatus) => this.statusChanged(status));
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped && !this.stopping) {
        this.statusBar.showProblem('The Mercury language server stopped; run "Mercury: Restart Language Server".');
      }
    });
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.fail(`The Mercury language server did not start: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async stopClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) {
      return;
    }
    this.stopping = true;
    try {
      if (client.isRunning()) {
        await client.stop();
      }
      await client.dispose();
    } catch (error) {
      this.log.warn(`Stopping the language server: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.stopping = false;
    }
  }

  /** Send the current settings with `workspace/didChangeConfiguration`. */
  async sendSettings(): Promise<void> {
    this.settings = await this.readSettings();
    this.statusBar.setEnabled(this.settings.enabled);
    if (this.client?.isRunning()) {
      await this.client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { mercury: this.settings },
      });
    }
  }

  /** Whether the settings last sent to the server have next edits on. */
  nextEditOn(): boolean {
    return this.settings?.nextEdit === true;
  }

  /** A request to the running server; undefined when none runs. */
  async request(method: string, params: unknown, token: vscode.CancellationToken): Promise<unknown> {
    if (!this.client?.isRunning()) {
      return undefined;
    }
    return this.client.sendRequest(method, params, token);
  }

  /** `mercury.trace.server` changed: the client traces from now on, or stops. */
  traceSettingChanged(): void {
    this.traceChannel.refresh();
  }

  private statusChanged(status: MercuryStatus): void {
    const previous = this.lastStatus;
    this.lastStatus = status;
    this.statusBar.update(status);
    if (!this.settings?.enabled) {
      return;
    }
    if (becameReady(previous, status)) {
      void askForSuggestionsAgain(this.log);
    } else if (switchedBackOn(previous, status)) {
      void this.wakeEngine();
    }
  }

  /**
   * Ask the server itself (not through VS Code) for a suggestion at the cursor: that starts its engine
   * connection, and VS Code keeps no empty answer that would stop it from asking again once it is ready.
   */
  private async wakeEngine(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined || this.client === undefined || !this.client.isRunning()) {
      return;
    }
    const { line, character } = editor.selection.active;
    try {
      await this.client.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri: editor.document.uri.toString() },
        position: { line, character },
        context: { triggerKind: InlineCompletionTriggerKind.Invoked, selectedCompletionInfo: undefined },
      });
    } catch (error) {
      this.log.debug(`Waking the engine: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /**
   * A document notification that fails because its server is being stopped (a restart: settings changed, or
   * "Restart Language Server") is moot, not an error: the next server is sent every open document.
   */
  private async unlessStopping(sending: Promise<void>): Promise<void> {
    try {
      await sending;
    } catch (error) {
      if (!this.stopping) {
        throw error;
      }
      this.log.debug(`Not sent to the stopping server: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async readSettings(): Promise<ServerSettings> {
    return serverSettings(vscode.workspace.getConfiguration('mercury'), this.schemas, await this.secrets.get(API_KEY_SECRET));
  }

  private serverOptions(found: ServerCommand): ServerOptions {
    return { command: found.command, args: found.args, options: { env: process.env } };
  }

  private clientOptions(settings: ServerSettings): LanguageClientOptions {
    return {
      // The server itself filters by mercury.enabledLanguages, so it sees every document.
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions: { mercury: settings },
      outputChannel: this.log,
      traceOutputChannel: this.traceChannel,
      stdioOptions,
      middleware: {
        // The extension's own items go first: a next edit on this line is what the user just set in motion.
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const extra = this.extraInlineItems(document, position);
          const answer = await next(document, position, context, token);
          if (extra.length === 0) {
            return answer;
          }
          const items = answer === null || answer === undefined ? [] : Array.isArray(answer) ? answer : answer.items;
          return [...extra, ...items];
        },
        didOpen: (document, next) => this.unlessStopping(next(document)),
        didChange: (event, next) => this.unlessStopping(next(event)),
        didClose: (document, next) => this.unlessStopping(next(document)),
        workspace: {
          // A server that pulls settings gets the same object as one that is pushed them.
          configuration: async (params, token, next) => {
            const answers = await next(params, token);
            if (!Array.isArray(answers)) {
              return answers;
            }
            return params.items.map((item, index) => (item.section === 'mercury' ? this.settings : answers[index]));
          },
        },
      },
    };
  }

  /** A warning in the log and, once per session, on screen. */
  private warnOnce(message: string): void {
    this.log.warn(message);
    if (this.warned.has(message)) {
      return;
    }
    this.warned.add(message);
    void vscode.window.showWarningMessage(message, 'Open Remote Settings').then((choice) => {
      if (choice === 'Open Remote Settings') {
        void vscode.commands.executeCommand('workbench.action.openRemoteSettings');
      }
    });
  }

  private fail(problem: string): void {
    this.log.error(problem);
    this.statusBar.showProblem(problem);
    // In a remote window (code-server, SSH, WSL, containers) the server runs on the remote machine:
    // its settings are best kept in the Remote settings, which apply to that machine only.
    const remote = vscode.env.remoteName !== undefined;
    const choices = remote ? ['Open Remote Settings', 'Open Settings'] : ['Open Settings'];
    void vscode.window.showErrorMessage(problem, ...choices).then((choice) => {
      if (choice === 'Open Settings') {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'mercury.server');
      } else if (choice === 'Open Remote Settings') {
        void vscode.commands.executeCommand('workbench.action.openRemoteSettings');
      }
    });
  }

  dispose(): void {
    void this.stop();
    this.traceChannel.dispose();
  }
}
