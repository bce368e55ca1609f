import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as fakeVscode from './mocks/vscode';

const bundlePath = path.join(__dirname, '..', 'out', 'extension.js');

// The language client subclasses vscode classes (CompletionItem, CodeLens...) when it loads;
// members the mock lacks are stood in for by an empty class.
const vscodeForBundle = new Proxy(fakeVscode as Record<string | symbol, unknown>, {
  get: (target, name) => (name in target ? target[name] : class {}),
});

/** Load the packaged bundle as VS Code would, recording every module it asks for. */
function loadBundle(): { exports: Record<string, unknown>; required: string[] } {
  const code = readFileSync(bundlePath, 'utf8');
  const required: string[] = [];
  const module = { exports: {} as Record<string, unknown> };
  const requireForBundle = (name: string): unknown => {
    required.push(name);
    return name === 'vscode' ? vscodeForBundle : require(name);
  };
  new Function('require', 'module', 'exports', '__filename', '__dirname', code)(
    requireForBundle,
    module,
    module.exports,
    bundlePath,
    path.dirname(bundlePath),
  );
  return { exports: module.exports, required };
}

describe('the bundled extension (out/extension.js, built by `npm run compile`)', () => {
  it('loads with only vscode and Node built-ins outside it, and exports activate and deactivate', () => {
    const { exports, required } = loadBundle();
    expect(typeof exports.activate).toBe('function');
    expect(typeof exports.deactivate).toBe('function');
    const builtins = new Set([...builtinModules, ...builtinModules.map((name) => `node:${name}`)]);
    expect(required.filter((name) => name !== 'vscode' && !builtins.has(name))).toEqual([]);
  });
});
