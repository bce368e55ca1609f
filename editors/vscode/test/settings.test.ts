import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIGURED_KEYS, DEFAULT_SETTINGS, serverSettings } from '../src/settings';

/** The settings table of notes/LSP_CONTRACT.md, copied by hand: a change to either side must be deliberate. */
const CONTRACT = {
  enabled: true,
  enabledLanguages: ['*'],
  engineUrl: null,
  backend: 'mercury',
  apiKey: null,
  remoteModel: null,
  autoStart: true,
  model: null,
  device: 'auto',
  prefixTokens: 1024,
  suffixTokens: 256,
  extraContextTokens: 0,
  maxTokens: 64,
  steps: null,
  threshold: null,
  debounceMs: 75,
  debounceMaxMs: 400,
  candidates: 1,
};

const manifest = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
const contributed: Record<string, { default: unknown }> = manifest.contributes.configuration.properties;

function reader(values: Record<string, unknown>) {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

describe('serverSettings', () => {
  it('sends the contract defaults when nothing is configured', () => {
    expect(serverSettings(reader({}), undefined)).toEqual(CONTRACT);
    expect(DEFAULT_SETTINGS).toEqual(CONTRACT);
  });

  it('sends configured values under their contract names, and nothing else', () => {
    const settings = serverSettings(
      reader({ maxTokens: 32, engineUrl: 'http://127.0.0.1:8123', backend: 'openai', threshold: 0.8, steps: 6,
        enabledLanguages: ['python'], 'server.path': '/usr/bin/mercury-lsp' }),
      'sk-test',
    );
    expect(settings).toMatchObject({ maxTokens: 32, engineUrl: 'http://127.0.0.1:8123', backend: 'openai',
      threshold: 0.8, steps: 6, enabledLanguages: ['python'], apiKey: 'sk-test' });
    expect(Object.keys(settings).sort()).toEqual(Object.keys(CONTRACT).sort());
  });

  it('turns empty text boxes into null, which the server reads as "not set"', () => {
    const settings = serverSettings(reader({ engineUrl: '', model: '   ', remoteModel: '' }), '');
    expect(settings).toMatchObject({ engineUrl: null, model: null, remoteModel: null, apiKey: null });
  });

  it('trims paths and URLs', () => {
    expect(serverSettings(reader({ model: ' /models/tiny ' }), undefined).model).toBe('/models/tiny');
  });
});

describe('package.json contributions', () => {
  it('contribute every contract key except the secret API key, with the contract default', () => {
    for (const key of CONFIGURED_KEYS) {
      expect(contributed[`mercury.${key}`], `mercury.${key}`).toBeDefined();
      expect(contributed[`mercury.${key}`].default, `mercury.${key}`).toEqual(CONTRACT[key as keyof typeof CONTRACT]);
    }
    expect(contributed['mercury.apiKey']).toBeUndefined();
  });

  it('contribute nothing beyond the contract, the server launch options and tracing', () => {
    const extras = Object.keys(contributed).filter((key) => !CONFIGURED_KEYS.includes(key.slice('mercury.'.length) as never));
    expect(extras.sort()).toEqual(['mercury.server.args', 'mercury.server.path', 'mercury.server.pythonPath',
      'mercury.trace.server']);
  });

  it('declare every command the extension registers', () => {
    const declared = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
    expect(declared).toEqual(['mercury.clearApiKey', 'mercury.disable', 'mercury.enable', 'mercury.restartServer',
      'mercury.setApiKey', 'mercury.showLog']);
  });

  it('target a VS Code new enough for inline completions over LSP', () => {
    expect(manifest.engines.vscode).toBe('^1.91.0');
    expect(manifest.dependencies['vscode-languageclient']).toMatch(/^\^10\.[1-9]/);
  });
});
