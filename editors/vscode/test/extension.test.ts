import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { activate, deactivate } from '../src/extension';
import { LanguageClient } from './mocks/languageclient';
import {
  commands,
  FakeSecretStorage,
  inputBoxAnswers,
  outputChannels,
  resetFakeVscode,
  settingsStore,
  shownErrors,
  statusBarItems,
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

function fakeContext() {
  return { subscriptions: [] as { dispose(): unknown }[], secrets: new FakeSecretStorage() };
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

/** Let the fire-and-forget handlers (configuration and secret events) finish. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 0));
}

let serverPath: string;

beforeEach(() => {
  resetFakeVscode();
  LanguageClient.instances = [];
  LanguageClient.startError = undefined;
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
  });

  it('registers its commands and disposes everything it created', async () => {
    const context = await activated();
    expect(commands.registered().sort()).toEqual([
      'mercury.clearApiKey',
      'mercury.disable',
      'mercury.enable',
      'mercury.restartServer',
      'mercury.setApiKey',
      'mercury.showLog',
    ]);
    for (const disposable of context.subscriptions.splice(0)) {
      await disposable.dispose();
    }
    expect(commands.registered()).toEqual([]);
    expect(statusBarItems[0].disposed).toBe(true);
  });

  it('explains a missing server in the status bar and an error message, and starts nothing', async () => {
    settingsStore.set('mercury.server.path', '/nowhere/mercury-lsp');
    await activated();
    expect(LanguageClient.instances).toHaveLength(0);
    const problem = 'mercury.server.path points to /nowhere/mercury-lsp, which is not an executable file.';
    expect(shownErrors).toEqual([problem]);
    expect(statusBarItems[0].text).toBe('$(error) Mercury');
    expect(statusBarItems[0].tooltip).toBe(`${problem} Click to show the log.`);
    expect(outputChannels[0].lines).toContain(`error ${problem}`);
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
