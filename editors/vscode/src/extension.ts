/** Entry point: wires the language client, the status bar and the commands together. */
import * as vscode from 'vscode';
import { NextEdits } from './nextEdit';
import { API_KEY_SECRET, ServerConnection } from './serverConnection';
import { serverSettingSchemas } from './settings';
import { StatusBar } from './status';

let connection: ServerConnection | undefined;

async function setEnabled(enabled: boolean): Promise<void> {
  await vscode.workspace.getConfiguration('mercury').update('enabled', enabled, vscode.ConfigurationTarget.Global);
}

async function askForApiKey(secrets: vscode.SecretStorage): Promise<void> {
  const key = await vscode.window.showInputBox({
    title: 'Mercury: API key for the remote engine',
    prompt: 'Stored in VS Code secret storage and sent to the server as mercury.apiKey. Leave empty to remove it.',
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) {
    return;
  }
  if (key.trim() === '') {
    await secrets.delete(API_KEY_SECRET);
  } else {
    await secrets.store(API_KEY_SECRET, key.trim());
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel('Mercury', { log: true });
  const statusBar = new StatusBar();
  // The server's settings are the ones this extension declares: no list of them is kept in code.
  const schemas = serverSettingSchemas(context.extension.packageJSON);
  // Each needs the other: next edits ask through the server, and the server's inline answers carry them.
  const server: ServerConnection = new ServerConnection(context.secrets, log, statusBar, schemas, (document, position) =>
    nextEdits.inlineItems(document, position),
  );
  const nextEdits: NextEdits = new NextEdits(server, log);
  connection = server;
  context.subscriptions.push(
    log,
    statusBar,
    server,
    nextEdits,
    vscode.commands.registerCommand('mercury.enable', () => setEnabled(true)),
    vscode.commands.registerCommand('mercury.disable', () => setEnabled(false)),
    vscode.commands.registerCommand('mercury.restartServer', () => server.restart()),
    vscode.commands.registerCommand('mercury.showLog', () => log.show()),
    vscode.commands.registerCommand('mercury.setApiKey', () => askForApiKey(context.secrets)),
    vscode.commands.registerCommand('mercury.clearApiKey', () => context.secrets.delete(API_KEY_SECRET)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('mercury.server')) {
        void server.restart();
      } else if (event.affectsConfiguration('mercury.trace')) {
        server.traceSettingChanged();
      } else if (event.affectsConfiguration('mercury')) {
        void server.sendSettings();
      }
    }),
    context.secrets.onDidChange((event) => {
      if (event.key === API_KEY_SECRET) {
        void server.sendSettings();
      }
    }),
  );
  await server.start();
}

export async function deactivate(): Promise<void> {
  await connection?.stop();
  connection = undefined;
}
