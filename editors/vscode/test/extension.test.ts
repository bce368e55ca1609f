import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { activate, deactivate } from '../src/extension';
import { LanguageClient } from './mocks/languageclient';
import {
  builtinCommandCalls,
  codeActionProviders,
  commands,
  decorationTypes,
  env,
  errorMessageAnswers,
  FakeSecretStorage,
  FakeTextDocument,
  FakeTextEditor,
  inspections,
  LogLevel,
  inputBoxAnswers,
  outputChannels,
  Position,
  Range,
  resetFakeVscode,
  Selection,
  settingsStore,
  shownErrorChoices,
  shownErrors,
  shownWarnings,
  statusBarItems,
  Uri,
  window,
  workspace,
} from './mocks/vscode';

vi.mock('vscode-languageclient/node', () => import('./mocks/languageclient'));

function fakeExecutable(): string {
  const folder = mkdtempSync(path.join(tmpdir(), 'mercury-vscode-'));
  const file = path.join(folder, 'mercury-lsp');
  writeFileSync(file, '#!/bin/sh\n');
  chmodSync(file, 0o755);
  return file;
}

const manifest = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));

function fakeContext() {
  return {
    subscriptions: [] as { dispose(): unknown }[],
    secrets: new FakeSecretStorage(),
    extension: { packageJSON: manifest },
  };
}

type Context = ReturnType<typeof fakeContext>;

let activeContext: Context | undefined;

async function activated(context: Context = fakeContext()): Promise<Context> {
  activeContext = context;
  await activate(context as never);
  return context;
}

function client(index = -1): LanguageClient {
  const instance = LanguageClient.instances.at(index);
  if (instance === undefined) {
    throw new Error('no LanguageClient was created');
  }
  return instance;
}

/** The settings object of the last didChangeConfiguration sent to the server. */
function lastPushedSettings(): Record<string, unknown> {
  const sent = client().sentNotifications.filter((n) => n.method === 'workspace/didChangeConfiguration');
  return (sent.at(-1)?.params as { settings: { mercury: Record<string, unknown> } }).settings.mercury;
}

function status(state: string, latencyMs: number | null = null) {
  return { state, latencyMs, tokens: null, steps: null, tokensPerSecond: null, message: null };
}

/** Let the fire-and-forget handlers (configuration and secret events) finish. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
}

let serverPath: string;

beforeEach(() => {
  resetFakeVscode();
  LanguageClient.instances = [];
  LanguageClient.startError = undefined;
  LanguageClient.startGate = undefined;
  LanguageClient.stopGate = undefined;
  LanguageClient.events = [];
  LanguageClient.answers.clear();
  serverPath = fakeExecutable();
  settingsStore.set('mercury.server.path', serverPath);
});

// As VS Code does: deactivate, then dispose the subscriptions.
afterEach(async () => {
  await deactivate();
  for (const disposable of activeContext?.subscriptions ?? []) {
    await disposable.dispose();
  }
  activeContext = undefined;
});

describe('activation', () => {
  it('starts mercury-lsp with the settings as initializationOptions', async () => {
    settingsStore.set('mercury.maxTokens', 32);
    settingsStore.set('mercury.model', '/models/tiny');
    settingsStore.set('mercury.server.args', ['--log-level', 'debug']);
    const context = fakeContext();
    await context.secrets.store('mercury.apiKey', 'sk-secret');
    await activated(context);

    const started = client();
    expect(LanguageClient.instances).toHaveLength(1);
    expect(started.id).toBe('mercury');
    expect(started.serverOptions).toMatchObject({ command: serverPath, args: ['--log-level', 'debug'] });
    expect(started.clientOptions.initializationOptions).toEqual({
      mercury: expect.objectContaining({ maxTokens: 32, model: '/models/tiny', apiKey: 'sk-secret', enabled: true }),
    });
    expect(started.clientOptions.documentSelector).toEqual([{ scheme: 'file' }, { scheme: 'untitled' }]);
    expect(started.isRunning()).toBe(true);
    expect(outputChannels[0].lines).toContain(`info Starting mercury-lsp from mercury.server.path: ${serverPath} --log-level debug`);
  });

  it("sends every server setting package.json declares, and none of the extension's own", async () => {
    await activated();
    const sent = (client().clientOptions.initializationOptions as { mercury: Record<string, unknown> }).mercury;
    const declared = Object.keys(manifest.contributes.configuration.properties)
      .map((key) => key.slice('mercury.'.length))
      .filter((key) => !key.startsWith('server.') && !key.startsWith('trace.'));
    expect(Object.keys(sent).sort()).toEqual([...declared, 'apiKey'].sort());
  });

  it('says which place the server was found in when no setting names it', async () => {
    settingsStore.delete('mercury.server.path');
    const project = path.dirname(path.dirname(path.dirname(serverPath)));
    workspace.workspaceFolders = [{ uri: { fsPath: project } as never }];
    const venvBin = path.join(project, '.venv', 'bin');
    const { mkdirSync, renameSync } = await import('node:fs');
    mkdirSync(venvBin, { recursive: true });
    renameSync(serverPath, path.join(venvBin, 'mercury-lsp'));
    await activated();
    expect(outputChannels[0].lines).toContain(
      `info Starting mercury-lsp from the workspace's .venv: ${path.join(venvBin, 'mercury-lsp')}`,
    );
  });

  it('gives the client a trace channel that follows mercury.trace.server, and level-aware stderr', async () => {
    await activated();
    const options = client().clientOptions;
    expect(options.traceOutputChannel?.logLevel).toBe(LogLevel.Off);
    expect(typeof options.stdioOptions?.stderr).toBe('function');
    await workspace.getConfiguration('mercury').update('trace.server', 'messages');
    await settle();
    expect(options.traceOutputChannel?.logLevel).toBe(LogLevel.Trace);
    // Tracing is the extension's own business: the server is neither restarted nor sent settings.
    expect(LanguageClient.instances).toHaveLength(1);
    expect(client().sentNotifications).toEqual([]);
  });

  it('registers its commands and disposes everything it created', async () => {
    const context = await activated();
    expect(commands.registered().sort()).toEqual([
      'mercury.applyNextEdit',
      'mercury.clearApiKey',
      'mercury.disable',
      'mercury.dismissNextEdit',
      'mercury.enable',
      'mercury.restartServer',
      'mercury.setApiKey',
      'mercury.showLog',
    ]);
    for (const disposable of context.subscriptions.splice(0)) {
      await disposable.dispose();
    }
    expect(commands.registered()).toEqual([]);
    expect(codeActionProviders).toEqual([]);
    expect(decorationTypes.every((type) => type.disposed)).toBe(true);
    expect(statusBarItems[0].disposed).toBe(true);
  });

  it('explains a missing server in the status bar and an error message, and starts nothing', async () => {
    settingsStore.set('mercury.server.path', '/nowhere/mercury-lsp');
    await activated();
    expect(LanguageClient.instances).toHaveLength(0);
    const problem = 'mercury.server.path points to /nowhere/mercury-lsp, which is not an executable file.';
    expect(shownErrors).toEqual([problem]);
    expect(shownErrorChoices).toEqual([['Open Settings']]);
    expect(statusBarItems[0].text).toBe('$(error) Mercury');
    expect(statusBarItems[0].tooltip).toBe(`${problem} Click to show the log.`);
    expect(outputChannels[0].lines).toContain(`error ${problem}`);
  });

  it('offers the Remote settings in a remote window, where the server runs', async () => {
    env.remoteName = 'ssh-remote';
    settingsStore.set('mercury.server.path', '/nowhere/mercury-lsp');
    errorMessageAnswers.push('Open Remote Settings');
    await activated();
    await settle();
    expect(shownErrorChoices).toEqual([['Open Remote Settings', 'Open Settings']]);
    expect(builtinCommandCalls).toEqual([{ id: 'workbench.action.openRemoteSettings', args: [] }]);
  });

  it('ignores a server path only the User settings of a remote window hold, and tells where it belongs', async () => {
    env.remoteName = 'ssh-remote';
    settingsStore.delete('mercury.server.path');
    inspections.set('mercury.server.path', { globalLocalValue: serverPath, globalValue: serverPath });
    await activated();
    // Not started from it (the search may still find a mercury-lsp elsewhere on this machine).
    expect(LanguageClient.instances.map((instance) => instance.serverOptions.command)).not.toContain(serverPath);
    expect(shownWarnings).toEqual([expect.stringMatching(/^mercury.server.path is set in your User settings/)]);
    // The same in the Remote settings: used.
    inspections.set('mercury.server.path', { globalLocalValue: '/elsewhere', globalRemoteValue: serverPath });
    await commands.executeCommand('mercury.restartServer');
    expect(client().serverOptions.command).toBe(serverPath);
    expect(shownWarnings).toHaveLength(1);
  });

  it('reports a server that fails to start', async () => {
    LanguageClient.startError = new Error('spawn EACCES');
    await activated();
    expect(shownErrors).toEqual(['The Mercury language server did not start: spawn EACCES']);
    expect(statusBarItems[0].command).toBe('mercury.showLog');
  });
});

describe('status bar', () => {
  it('follows mercury/status notifications', async () => {
    await activated();
    const item = statusBarItems[0];
    expect(item.text).toBe('$(sync~spin) Mercury');
    const notify = client().notificationHandlers.get('mercury/status');
    notify?.({ state: 'loading', latencyMs: null, tokens: null, steps: null, tokensPerSecond: null, message: null });
    expect(item.text).toBe('$(sync~spin) Mercury: loading');
    notify?.({ state: 'ready', latencyMs: 35.2, tokens: 16, steps: 4, tokensPerSecond: 454.5, message: null });
    expect(item.text).toBe('$(zap) Mercury · 35 ms · 455 tok/s');
  });

  it('shows a server that died on its own, but not one stopped on purpose', async () => {
    await activated();
    await commands.executeCommand('mercury.restartServer');
    expect(statusBarItems[0].text).toBe('$(sync~spin) Mercury');
    client().crash();
    expect(statusBarItems[0].text).toBe('$(error) Mercury');
  });
});

describe('when the engine becomes ready', () => {
  const editor = {
    document: { uri: { toString: () => 'file:///proj/add.py' } },
    selection: { active: { line: 4, character: 11 } },
  };

  it('asks VS Code once for inline suggestions at the cursor, which it got none of while loading', async () => {
    await activated();
    window.activeTextEditor = editor;
    const notify = client().notificationHandlers.get('mercury/status');
    notify?.(status('loading'));
    expect(builtinCommandCalls).toEqual([]);
    notify?.(status('ready'));
    notify?.(status('ready', 120));
    notify?.(status('ready', 80));
    await settle();
    expect(builtinCommandCalls).toEqual([{ id: 'editor.action.inlineSuggest.trigger', args: [] }]);
    expect(client().sentRequests).toEqual([]);
  });

  it('wakes the engine when completions are switched back on, then asks VS Code again once it is ready', async () => {
    await activated();
    window.activeTextEditor = editor;
    const notify = client().notificationHandlers.get('mercury/status');
    // Off and on again: the server reports disabled, then loading until it is asked for something.
    notify?.(status('disabled'));
    notify?.(status('loading'));
    await settle();
    // Asked directly, so that VS Code holds no empty explicit answer that would stop it from asking later.
    expect(client().sentRequests).toEqual([{
      method: 'textDocument/inlineCompletion',
      params: {
        textDocument: { uri: 'file:///proj/add.py' },
        position: { line: 4, character: 11 },
        context: { triggerKind: 1, selectedCompletionInfo: undefined },
      },
    }]);
    expect(builtinCommandCalls).toEqual([]);
    notify?.(status('ready'));
    await settle();
    expect(builtinCommandCalls).toEqual([{ id: 'editor.action.inlineSuggest.trigger', args: [] }]);
  });

  it('asks nothing without an editor in focus, or with completions off', async () => {
    await activated();
    const notify = client().notificationHandlers.get('mercury/status');
    notify?.(status('ready'));
    window.activeTextEditor = editor;
    settingsStore.set('mercury.enabled', false);
    await commands.executeCommand('mercury.disable');
    await settle();
    notify?.(status('loading'));
    notify?.(status('ready'));
    await settle();
    expect(builtinCommandCalls).toEqual([]);
    expect(client().sentRequests).toEqual([]);
  });
});

describe('commands', () => {
  it('disable and enable flip mercury.enabled and push it to the server', async () => {
    await activated();
    await commands.executeCommand('mercury.disable');
    await settle();
    expect(settingsStore.get('mercury.enabled')).toBe(false);
    expect(lastPushedSettings().enabled).toBe(false);
    expect(statusBarItems[0].text).toBe('$(circle-slash) Mercury');

    await commands.executeCommand('mercury.enable');
    await settle();
    expect(lastPushedSettings().enabled).toBe(true);
    expect(statusBarItems[0].command).not.toBe('mercury.enable');
  });

  it('a restart that comes while the server still starts waits for it, then stops it cleanly', async () => {
    let initialized = () => undefined as void;
    LanguageClient.startGate = new Promise<void>((resolve) => {
      initialized = resolve;
    });
    const activation = activated();
    await settle();
    // A settings change and the Restart command while the first server still initializes.
    const restarts = [commands.executeCommand('mercury.restartServer'), commands.executeCommand('mercury.restartServer')];
    await settle();
    expect(LanguageClient.events).toEqual(['start 1']);
    initialized();
    await activation;
    await Promise.all(restarts);
    expect(LanguageClient.events).toEqual([
      'start 1', 'running 1', 'stop 1', 'dispose 1', 'start 2', 'running 2', 'stop 2', 'dispose 2', 'start 3', 'running 3',
    ]);
    expect(client().isRunning()).toBe(true);
    expect(shownErrors).toEqual([]);
  });

  it('a document closed while the server stops is not an error; at any other time it is', async () => {
    await activated();
    const didClose = client().clientOptions.middleware.didClose;
    const failing = () => Promise.reject(new Error('Starting server failed'));
    await expect(didClose({}, failing)).rejects.toThrow('Starting server failed');
    let stopped = () => undefined as void;
    LanguageClient.stopGate = new Promise<void>((resolve) => {
      stopped = resolve;
    });
    const restart = commands.executeCommand('mercury.restartServer');
    await settle();
    await expect(didClose({}, failing)).resolves.toBeUndefined();
    stopped();
    await restart;
    expect(outputChannels[0].lines.filter((line) => line.startsWith('error'))).toEqual([]);
  });

  it('restart replaces the client with a fresh one', async () => {
    await activated();
    const first = client();
    await commands.executeCommand('mercury.restartServer');
    expect(first.disposed).toBe(true);
    expect(LanguageClient.instances).toHaveLength(2);
    expect(client().isRunning()).toBe(true);
  });

  it('show log opens the output channel', async () => {
    await activated();
    await commands.executeCommand('mercury.showLog');
    expect(outputChannels[0].shown).toBe(1);
  });

  it('set and clear API key go through secret storage to the server', async () => {
    const context = await activated();
    inputBoxAnswers.push('  sk-new  ');
    await commands.executeCommand('mercury.setApiKey');
    await settle();
    expect(context.secrets.values.get('mercury.apiKey')).toBe('sk-new');
    expect(lastPushedSettings().apiKey).toBe('sk-new');

    await commands.executeCommand('mercury.clearApiKey');
    await settle();
    expect(context.secrets.values.has('mercury.apiKey')).toBe(false);
    expect(lastPushedSettings().apiKey).toBeNull();
  });

  it('set API key leaves the secret alone when the box is dismissed', async () => {
    const context = await activated();
    await context.secrets.store('mercury.apiKey', 'sk-old');
    inputBoxAnswers.push(undefined);
    await commands.executeCommand('mercury.setApiKey');
    expect(context.secrets.values.get('mercury.apiKey')).toBe('sk-old');
  });
});

describe('configuration changes', () => {
  it('pushes changed settings with didChangeConfiguration', async () => {
    await activated();
    await workspace.getConfiguration('mercury').update('maxTokens', 16);
    await settle();
    expect(lastPushedSettings().maxTokens).toBe(16);
    expect(LanguageClient.instances).toHaveLength(1);
  });

  it('restarts the server when its launch settings change', async () => {
    await activated();
    const replacement = fakeExecutable();
    await workspace.getConfiguration('mercury.server').update('path', replacement);
    await settle();
    await settle();
    expect(LanguageClient.instances).toHaveLength(2);
    expect(client().serverOptions.command).toBe(replacement);
  });

  it('answers workspace/configuration for the mercury section with the same settings', async () => {
    settingsStore.set('mercury.debounceMs', 120);
    await activated();
    const middleware = client().clientOptions.middleware.workspace.configuration;
    const answers = await middleware(
      { items: [{ section: 'mercury' }, { section: 'editor' }] },
      undefined,
      () => [null, { tabSize: 4 }],
    );
    expect(answers).toEqual([expect.objectContaining({ debounceMs: 120 }), { tabSize: 4 }]);
  });
});

describe('next edits', () => {
  const sameLine = {
    range: { start: { line: 1, character: 12 }, end: { line: 1, character: 17 } },
    text: 'a * b',
    textDocument: { uri: 'file:///proj/calc.py', version: 2 },
  };

  function editedInFocus(): FakeTextEditor {
    const cursor = new Position(1, 8);
    const editor = new FakeTextEditor(
      new FakeTextDocument(Uri.file('/proj/calc.py'), 'def add(a, b):\n    result = a + b\n'),
      new Selection(cursor, cursor),
    );
    window.activeTextEditor = editor;
    window.visibleTextEditors = [editor];
    editor.document.replace(new Range(1, 4, 1, 10), 'item');
    return editor;
  }

  it('asks the running server once typing pauses, and puts an edit on the cursor line before its inline items', async () => {
    settingsStore.set('mercury.nextEdit', true);
    await activated();
    LanguageClient.answers.set('textDocument/copilotInlineEdit', { edits: [sameLine] });
    const editor = editedInFocus();
    await settle();
    expect(client().sentRequests).toEqual([]); // debounced
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(client().sentRequests.map((r) => r.method)).toEqual(['textDocument/copilotInlineEdit']);
    const serverItem = { insertText: ' + 1' };
    const items = await client().clientOptions.middleware.provideInlineCompletionItems(
      editor.document, new Position(1, 8), {}, {}, async () => ({ items: [serverItem] }),
    );
    expect(items).toEqual([{ insertText: 'a * b', range: new Range(1, 12, 1, 17), command: undefined }, serverItem]);
    expect(codeActionProviders).toHaveLength(1);
    expect(commands.registered()).toEqual(expect.arrayContaining(['mercury.applyNextEdit', 'mercury.dismissNextEdit']));
  });

  it('asks nothing while mercury.nextEdit is off (the default), and leaves inline answers alone', async () => {
    await activated();
    const editor = editedInFocus();
    await new Promise((resolve) => setTimeout(resolve, 350));
    expect(client().sentRequests).toEqual([]);
    const answer = { items: [{ insertText: ' + 1' }] };
    expect(await client().clientOptions.middleware.provideInlineCompletionItems(
      editor.document, new Position(1, 8), {}, {}, async () => answer,
    )).toBe(answer);
  });
});
