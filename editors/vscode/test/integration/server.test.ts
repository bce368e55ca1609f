/**
 * The wire protocol against the real `mercury-lsp` over stdio, with the settings the extension builds from
 * its package.json: the server accepts every one of them, an inline completion round trip whose item VS Code
 * can accept word by word, and a cancelled request answered with -32800.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CancellationTokenSource,
  type CodeAction,
  CodeActionRequest,
  CodeActionResolveRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  type InitializeResult,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  type InlineCompletionItem,
  type InlineCompletionList,
  LSPErrorCodes,
  type ProtocolConnection,
  ResponseError,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node';
import { findServerCommand } from '../../src/serverCommand';
import { type ServerSettings, serverSettingSchemas, serverSettings } from '../../src/settings';
import type { MercuryStatus } from '../../src/status';

const repoRoot = path.resolve(__dirname, '..', '..', '..', '..');
const workDir = mkdtempSync(path.join(tmpdir(), 'mercury-vscode-it-'));
const runtimeDir = path.join(workDir, 'runtime');

/** The same search the extension does, with the repository's own virtual environment as the workspace. */
function serverExecutable(): string {
  const found = findServerCommand({
    serverPath: process.env.MERCURY_LSP ?? '',
    pythonPath: '',
    args: [],
    workspaceFolders: [repoRoot],
    env: process.env,
    home: homedir(),
    platform: process.platform,
  });
  if ('problem' in found) {
    throw new Error(found.problem);
  }
  return found.command;
}

/**
 * The bundled model, unless MERCURY_TEST_MODEL names another: the server's post-processing rightly drops
 * most of what a tiny random checkpoint writes, and this test needs a suggestion.
 */
function testModel(): string {
  return process.env.MERCURY_TEST_MODEL || path.join(repoRoot, 'mercury_lsp', 'models', 'default');
}

/** Drop `//` comments outside strings, as VS Code does when it reads settings.json. */
function stripLineComments(jsonc: string): string {
  return jsonc
    .split('\n')
    .map((line) => {
      let inString = false;
      for (let i = 0; i < line.length; i += 1) {
        if (line[i] === '"' && line[i - 1] !== '\\') {
          inString = !inString;
        } else if (!inString && line.startsWith('//', i)) {
          return line.slice(0, i);
        }
      }
      return line;
    })
    .join('\n');
}

/** The settings.json block that follows <!-- vscode-settings --> in editors/README.md, model filled in. */
function readmeSettings(model: string): Record<string, unknown> {
  const readme = readFileSync(path.join(repoRoot, 'editors', 'README.md'), 'utf8');
  const block = /<!-- vscode-settings -->\s*```jsonc\n([\s\S]*?)\n```/.exec(readme);
  if (block === null) {
    throw new Error('editors/README.md has no vscode-settings block');
  }
  const settings = JSON.parse(stripLineComments(block[1])) as Record<string, unknown>;
  if (settings['mercury.model'] !== '/path/to/model') {
    throw new Error('the README settings block must set "mercury.model": "/path/to/model"');
  }
  settings['mercury.model'] = model;
  return settings;
}

/** `workspace.getConfiguration('mercury')` over a settings.json object. */
function reader(settingsJson: Record<string, unknown>) {
  return { get: <T>(key: string) => settingsJson[`mercury.${key}`] as T | undefined };
}

const PYTHON_SOURCE = 'def add(a, b):\n    """Return the sum of a and b."""\n    return \n\nprint(add(1, 2))\n';
const PYTHON_URI = `file://${path.join(workDir, 'add.py')}`;

let server: ChildProcess;
let connection: ProtocolConnection;
let initializeResult: InitializeResult;
let settings: ServerSettings;
const statuses: MercuryStatus[] = [];
const serverLog: string[] = [];
const shownMessages: { type: number; message: string }[] = [];
const loggedMessages: { type: number; message: string }[] = [];

function inlineItems(result: InlineCompletionList | InlineCompletionItem[] | null): InlineCompletionItem[] {
  if (result === null) {
    return [];
  }
  return Array.isArray(result) ? result : result.items;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

beforeAll(async () => {
  const executable = serverExecutable();
  const model = testModel();
  // The README's settings.json, turned into the server's settings by the extension's own code.
  const manifest = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8'));
  settings = serverSettings(reader(readmeSettings(model)), serverSettingSchemas(manifest), undefined);
  // These tests are about the wire, not about what the model is sure of: a small model's answer at the cursor
  // may fall under the default minConfidence (the server's own tests cover the cut), so show whatever it says.
  settings = { ...settings, minConfidence: 0 };
  server = spawn(executable, [], {
    env: { ...process.env, MERCURY_RUNTIME_DIR: runtimeDir },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  server.stderr?.on('data', (chunk: Buffer) => serverLog.push(chunk.toString()));
  connection = createProtocolConnection(
    new StreamMessageReader(server.stdout!),
    new StreamMessageWriter(server.stdin!),
  );
  connection.onNotification('mercury/status', (status: MercuryStatus) => {
    statuses.push(status);
  });
  connection.onNotification('window/showMessage', (message: { type: number; message: string }) => {
    shownMessages.push(message);
    serverLog.push(message.message);
  });
  connection.onNotification('window/logMessage', (message: { type: number; message: string }) => {
    loggedMessages.push(message);
  });
  connection.onNotification('$/progress', () => undefined);
  connection.onRequest('window/workDoneProgress/create', () => null);
  connection.onRequest('client/registerCapability', () => null);
  connection.onRequest('workspace/configuration', (params: { items: { section?: string }[] }) =>
    params.items.map((item) => (item.section === 'mercury' ? settings : null)),
  );
  connection.listen();
  initializeResult = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: `file://${workDir}`,
    capabilities: {
      general: { positionEncodings: ['utf-16'] },
      window: { workDoneProgress: true },
      workspace: { configuration: true, didChangeConfiguration: { dynamicRegistration: false } },
      textDocument: {
        synchronization: { dynamicRegistration: false },
        inlineCompletion: { dynamicRegistration: false },
        // What vscode-languageclient declares: code actions whose edit is filled in on resolve.
        codeAction: { resolveSupport: { properties: ['edit'] }, dataSupport: true },
      },
    },
    initializationOptions: { mercury: settings },
    workspaceFolders: null,
  });
  await connection.sendNotification(InitializedNotification.type, {});
  await connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri: PYTHON_URI, languageId: 'python', version: 1, text: PYTHON_SOURCE },
  });
});

afterAll(async () => {
  if (connection !== undefined && server?.exitCode === null) {
    await connection.sendRequest(ShutdownRequest.type);
    await connection.sendNotification(ExitNotification.type);
    connection.dispose();
  }
  // The engine the server auto-started lives in our runtime folder; stop it the way a user would.
  const engine = path.join(path.dirname(serverExecutable()), 'mercury-engine');
  execFileSync(engine, ['stop'], { env: { ...process.env, MERCURY_RUNTIME_DIR: runtimeDir }, stdio: 'inherit' });
});

describe('mercury-lsp over stdio', () => {
  it('advertises inline completions', () => {
    expect(initializeResult.capabilities.inlineCompletionProvider).toBeTruthy();
  });

  it("accepts every setting of the extension's package.json (names, defaults and types agree with the server)", async () => {
    // The server answers settings it rejects with window/showMessage; give a late one a moment to arrive.
    await sleep(300);
    expect(shownMessages, JSON.stringify(shownMessages)).toEqual([]);
  });

  it('answers an inline completion with the infill at the cursor and reports its timing', async () => {
    const cursor = { line: 2, character: 11 };
    // While the engine loads its model the server answers at once with nothing; ask until it has loaded.
    let items: InlineCompletionItem[] = [];
    const deadline = Date.now() + 120_000;
    while (items.length === 0 && Date.now() < deadline) {
      const result = await connection.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri: PYTHON_URI },
        position: cursor,
        context: { triggerKind: InlineCompletionTriggerKind.Invoked, selectedCompletionInfo: undefined },
      });
      items = inlineItems(result);
      if (items.length === 0) {
        await sleep(500);
      }
    }
    expect(items.length, `no completion in 120 s; server said: ${serverLog.join('')}`).toBeGreaterThan(0);
    const [item] = items;
    expect(typeof item.insertText).toBe('string');
    expect((item.insertText as string).trim()).not.toBe('');
    // VS Code accepts a word or a line of a suggestion (editor.action.inlineSuggest.acceptNextWord/-Line)
    // only when the item inserts at the cursor: no range, or an empty one there.
    if (item.range !== undefined) {
      expect(item.range).toEqual({ start: cursor, end: cursor });
    }
    // mercury/status follows the answer it describes: give it a moment to arrive.
    const readyStatuses = () => statuses.filter((status) => status.state === 'ready' && status.latencyMs !== null);
    for (let waited = 0; readyStatuses().length === 0 && waited < 5_000; waited += 50) {
      await sleep(50);
    }
    const ready = readyStatuses();
    expect(ready.length).toBeGreaterThan(0);
    expect(ready.at(-1)?.latencyMs).toBeGreaterThan(0);
  });

  it('offers "Regenerate selection" on a selection and resolves it to an edit of that document', async () => {
    const selection = { start: { line: 2, character: 4 }, end: { line: 2, character: 11 } };
    const actions = (await connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri: PYTHON_URI },
      range: selection,
      context: { diagnostics: [] },
    })) as CodeAction[];
    const fill = actions.find((action) => action.title === 'Regenerate selection');
    expect(fill, JSON.stringify(actions)).toBeDefined();
    const resolved = await connection.sendRequest(CodeActionResolveRequest.type, fill as CodeAction);
    const edits = resolved.edit?.changes?.[PYTHON_URI];
    expect(edits).toHaveLength(1);
    expect(edits?.[0].range.start.line).toBe(2);
  });

  it('answers a cancelled request with RequestCancelled (-32800)', async () => {
    // A long debounce holds the automatic request in the server, so the cancel always arrives first.
    settings = { ...settings, debounceMs: 5_000, debounceMaxMs: 5_000 };
    await connection.sendNotification(DidChangeConfigurationNotification.type, { settings: { mercury: settings } });
    const source = new CancellationTokenSource();
    const started = Date.now();
    const pending = connection.sendRequest(
      InlineCompletionRequest.type,
      {
        textDocument: { uri: PYTHON_URI },
        position: { line: 4, character: 10 },
        context: { triggerKind: InlineCompletionTriggerKind.Automatic, selectedCompletionInfo: undefined },
      },
      source.token,
    );
    await sleep(200);
    source.cancel();
    const error = await pending.then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(ResponseError);
    expect((error as ResponseError<unknown>).code).toBe(LSPErrorCodes.RequestCancelled);
    expect((error as ResponseError<unknown>).code).toBe(-32800);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('logs through window/logMessage with the level of each record, not as stderr errors', async () => {
    // pygls warns about a cancel for a request it does not know; the client must see a Warning (2).
    await connection.sendNotification('$/cancelRequest', { id: 987_654 });
    for (let waited = 0; waited < 5_000; waited += 50) {
      if (loggedMessages.some((message) => message.message.includes('987654'))) {
        break;
      }
      await sleep(50);
    }
    const warning = loggedMessages.find((message) => message.message.includes('987654'));
    expect(warning, JSON.stringify(loggedMessages)).toMatchObject({ type: 2 });
    expect(serverLog.join('')).not.toContain('987654');
  });
});
