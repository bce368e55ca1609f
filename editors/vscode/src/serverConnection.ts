/** The language client's life: find the server, start it, pass settings, restart on demand. */
import * as os from 'node:os';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { findServerCommand, type ServerCommand, type ServerCommandResult } from './serverCommand';
import { type MercurySettings, serverSettings } from './settings';
import { type MercuryStatus, STATUS_NOTIFICATION, type StatusBar } from './status';

export const API_KEY_SECRET = 'mercury.apiKey';

/** Resolve the server executable from the `mercury.server.*` settings. */
function configuredServerCommand(): ServerCommandResult {
  const config = vscode.workspace.getConfiguration('mercury.server');
  return findServerCommand({
    serverPath: config.get<string>('path') ?? '',
    pythonPath: config.get<string>('pythonPath') ?? '',
    args: config.get<string[]>('args') ?? [],
    workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath),
    searchPath: process.env.PATH ?? '',
    home: os.homedir(),
    platform: process.platform,
  });
}

/** One language client at a time, with the settings last sent to its server. */
export class ServerConnection implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private settings: MercurySettings | undefined;
  private stopping = false;

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly log: vscode.LogOutputChannel,
    private readonly statusBar: StatusBar,
  ) {}

  async start(): Promise<void> {
    const found = configuredServerCommand();
    if ('problem' in found) {
      this.fail(found.problem);
      return;
    }
    this.settings = await this.readSettings();
    this.statusBar.setEnabled(this.settings.enabled);
    this.statusBar.reset();
    this.log.info(`Starting ${[found.command, ...found.args].join(' ')}`);
    const client = new LanguageClient('mercury', 'Mercury', this.serverOptions(found), this.clientOptions(this.settings));
    client.onNotification(STATUS_NOTIFICATION, (status: MercuryStatus) => this.statusBar.update(status));
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

  async stop(): Promise<void> {
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
    } finally {
      this.stopping = false;
    }
  }

  /** Stop and start again, finding the executable anew (its settings may have changed). */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
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

  private async readSettings(): Promise<MercurySettings> {
    return serverSettings(vscode.workspace.getConfiguration('mercury'), await this.secrets.get(API_KEY_SECRET));
  }

  private serverOptions(found: ServerCommand): ServerOptions {
    return { command: found.command, args: found.args, options: { env: process.env } };
  }

  private clientOptions(settings: MercurySettings): LanguageClientOptions {
    return {
      // The server itself filters by mercury.enabledLanguages, so it sees every document.
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions: { mercury: settings },
      outputChannel: this.log,
      middleware: {
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

  private fail(problem: string): void {
    this.log.error(problem);
    this.statusBar.showProblem(problem);
    void vscode.window.showErrorMessage(problem, 'Open Settings').then((choice) => {
      if (choice === 'Open Settings') {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'mercury.server');
      }
    });
  }

  dispose(): void {
    void this.stop();
  }
}
