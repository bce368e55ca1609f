import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findServerCommand, isExecutableFile, type ServerLookup } from '../src/serverCommand';

function lookup(executables: string[], overrides: Partial<ServerLookup> = {}): ServerLookup {
  const present = new Set(executables);
  return {
    serverPath: '',
    pythonPath: '',
    args: [],
    workspaceFolders: [],
    searchPath: '/usr/local/bin:/usr/bin',
    home: '/home/ada',
    platform: 'linux',
    isExecutable: (file) => present.has(file),
    ...overrides,
  };
}

describe('findServerCommand', () => {
  it('uses mercury.server.path when set, with the extra arguments', () => {
    const found = findServerCommand(lookup(['/opt/m/mercury-lsp'], { serverPath: '/opt/m/mercury-lsp', args: ['-v'] }));
    expect(found).toEqual({ command: '/opt/m/mercury-lsp', args: ['-v'] });
  });

  it('expands ~ in mercury.server.path', () => {
    const found = findServerCommand(lookup(['/home/ada/bin/mercury-lsp'], { serverPath: '~/bin/mercury-lsp' }));
    expect(found).toEqual({ command: '/home/ada/bin/mercury-lsp', args: [] });
  });

  it('says in one sentence when mercury.server.path is not executable', () => {
    const found = findServerCommand(lookup([], { serverPath: '/nowhere/mercury-lsp' }));
    expect(found).toEqual({ problem: 'mercury.server.path points to /nowhere/mercury-lsp, which is not an executable file.' });
  });

  it('takes the mercury-lsp script beside mercury.server.pythonPath', () => {
    const found = findServerCommand(lookup(['/envs/m/bin/mercury-lsp'], { pythonPath: '/envs/m/bin/python3' }));
    expect(found).toEqual({ command: '/envs/m/bin/mercury-lsp', args: [] });
  });

  it('tells how to install into the chosen interpreter when the script is missing', () => {
    const found = findServerCommand(lookup(['/usr/bin/mercury-lsp'], { pythonPath: '/envs/m/bin/python3' }));
    expect(found).toEqual({
      problem:
        'There is no mercury-lsp beside /envs/m/bin/python3; install it there (`/envs/m/bin/python3 -m pip install .` in the mercury-lsp repository).',
    });
  });

  it("prefers the workspace's .venv over PATH", () => {
    const found = findServerCommand(
      lookup(['/proj/.venv/bin/mercury-lsp', '/usr/bin/mercury-lsp'], { workspaceFolders: ['/proj'] }),
    );
    expect(found).toEqual({ command: '/proj/.venv/bin/mercury-lsp', args: [] });
  });

  it('searches PATH in order, then ~/.local/bin', () => {
    expect(findServerCommand(lookup(['/usr/bin/mercury-lsp', '/usr/local/bin/mercury-lsp']))).toEqual({
      command: '/usr/local/bin/mercury-lsp',
      args: [],
    });
    expect(findServerCommand(lookup(['/home/ada/.local/bin/mercury-lsp']))).toEqual({
      command: '/home/ada/.local/bin/mercury-lsp',
      args: [],
    });
  });

  it('uses Windows names on Windows', () => {
    const found = findServerCommand(
      lookup([path.join('C:/envs/m', 'Scripts', 'mercury-lsp.exe')], { pythonPath: 'C:/envs/m/Scripts/python.exe', platform: 'win32' }),
    );
    expect(found).toEqual({ command: path.join('C:/envs/m', 'Scripts', 'mercury-lsp.exe'), args: [] });
  });

  it('says how to install when nothing is found', () => {
    expect(findServerCommand(lookup([]))).toEqual({
      problem:
        "mercury-lsp was not found on PATH or in the workspace's .venv; install it (`pip install .` in the mercury-lsp repository) or set mercury.server.path.",
    });
  });

  it('checks the real file system by default', () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'mercury-vscode-'));
    const bin = path.join(folder, '.venv', 'bin');
    mkdirSync(bin, { recursive: true });
    const script = path.join(bin, 'mercury-lsp');
    writeFileSync(script, '#!/bin/sh\n');
    expect(isExecutableFile(script)).toBe(false);
    chmodSync(script, 0o755);
    expect(isExecutableFile(script)).toBe(true);
    expect(isExecutableFile(bin)).toBe(false);
    const found = findServerCommand({ ...lookup([]), isExecutable: undefined, searchPath: '', workspaceFolders: [folder] });
    expect(found).toEqual({ command: script, args: [] });
  });
});
