import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverSettingSchemas, serverSettings } from '../src/settings';

const manifest = JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
const contributed: Record<string, { default: unknown; scope?: string }> = manifest.contributes.configuration.properties;

/** The settings of the extension itself; everything else under `mercury.` belongs to the server. */
const EXTENSION_ONLY = ['mercury.server.args', 'mercury.server.path', 'mercury.server.pythonPath', 'mercury.trace.server'];

function reader(values: Record<string, unknown>) {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

/** A package.json of our own making, so the reading is checked apart from what the real one declares. */
const SMALL_MANIFEST = {
  contributes: {
    configuration: [
      {
        properties: {
          'mercury.enabled': { type: 'boolean', default: true },
          'mercury.model': { type: ['string', 'null'], default: null },
          'mercury.backend': { type: 'string', default: 'mercury' },
          'mercury.maxLines': { type: ['integer', 'null'], default: null },
        },
      },
      { properties: { 'mercury.server.path': { type: 'string', default: '' }, 'mercury.trace.server': { type: 'string' } } },
      { properties: { 'editor.other': { type: 'string', default: 'x' } } },
    ],
  },
};

describe('serverSettingSchemas', () => {
  it('takes every mercury.* setting of every configuration section, less the extension-only ones', () => {
    expect([...serverSettingSchemas(SMALL_MANIFEST).keys()].sort()).toEqual(['backend', 'enabled', 'maxLines', 'model']);
  });

  it('reads the real package.json: every mercury.* setting except how the server is started and traced', () => {
    const keys = [...serverSettingSchemas(manifest).keys()].map((key) => `mercury.${key}`).sort();
    expect(keys).toEqual(Object.keys(contributed).filter((key) => !EXTENSION_ONLY.includes(key)).sort());
    expect(keys).toContain('mercury.maxTokens');
  });

  it('refuses a package.json without the server settings', () => {
    expect(() => serverSettingSchemas({ contributes: {} })).toThrow(/declares no mercury.enabled setting/);
  });
});

describe('serverSettings', () => {
  const schemas = serverSettingSchemas(SMALL_MANIFEST);

  it('sends each declared default when nothing is configured, and no API key', () => {
    expect(serverSettings(reader({}), schemas, undefined)).toEqual({
      enabled: true,
      model: null,
      backend: 'mercury',
      maxLines: null,
      apiKey: null,
    });
  });

  it('sends configured values under their own names, and nothing undeclared', () => {
    const settings = serverSettings(
      reader({ backend: 'openai', maxLines: 1, 'server.path': '/usr/bin/mercury-lsp', unknownKey: 3 }),
      schemas,
      ' sk-test ',
    );
    expect(settings).toEqual({ enabled: true, model: null, backend: 'openai', maxLines: 1, apiKey: 'sk-test' });
  });

  it('turns empty text boxes of nullable settings into null, which the server reads as "not set", and trims them', () => {
    expect(serverSettings(reader({ model: '   ' }), schemas, '').model).toBeNull();
    expect(serverSettings(reader({ model: ' /models/tiny ' }), schemas, undefined).model).toBe('/models/tiny');
    // A setting that cannot be null passes as it is: the server says what is wrong with it.
    expect(serverSettings(reader({ backend: '' }), schemas, undefined).backend).toBe('');
  });

  it('sends the real package.json defaults for every server setting', () => {
    const settings = serverSettings(reader({}), serverSettingSchemas(manifest), undefined);
    for (const [key, schema] of Object.entries(contributed)) {
      if (!EXTENSION_ONLY.includes(key)) {
        expect(settings[key.slice('mercury.'.length)], key).toEqual(schema.default);
      }
    }
  });
});

describe('package.json', () => {
  it('lets the server path be set for the machine in every window kind (User, Remote or Workspace settings)', () => {
    for (const key of ['mercury.server.path', 'mercury.server.pythonPath', 'mercury.server.args']) {
      expect(contributed[key].scope, key).toBe('machine-overridable');
    }
  });

  it('declares every command the extension registers', () => {
    const declared = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
    expect(declared).toEqual(['mercury.applyNextEdit', 'mercury.clearApiKey', 'mercury.disable',
      'mercury.dismissNextEdit', 'mercury.enable', 'mercury.restartServer', 'mercury.setApiKey', 'mercury.showLog']);
  });

  it('targets the VS Code that the language client needs for inline completions, without proposed API', () => {
    const client = JSON.parse(
      readFileSync(path.join(__dirname, '..', 'node_modules', 'vscode-languageclient', 'package.json'), 'utf8'),
    );
    expect(manifest.dependencies['vscode-languageclient']).toMatch(/^\^10\.[1-9]/);
    expect(manifest.engines.vscode).toBe(client.engines.vscode);
    expect(manifest.devDependencies['@types/vscode']).toBe(manifest.engines.vscode.replace('^', ''));
    expect(manifest.enabledApiProposals).toBeUndefined();
  });

  it('states its minimum VS Code version in its README', () => {
    const readme = readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    expect(readme).toContain(`VS Code ${manifest.engines.vscode.replace('^', '')} or newer`);
  });
});
