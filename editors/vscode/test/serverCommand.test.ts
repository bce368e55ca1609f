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
    env: { PATH: '/usr/local/bin:/usr/bin' },
    home: '/home/ada',
    platform: 'linux',
    isExecutable: (file) => present.has(file),
    ...overrides,
  };
}

describe('findServerCommand with a setting', () => {
  it('uses mercury.server.path when set, with the extra arguments', () => {
    const found = findServerCommand(lookup(['/opt/m/mercury-lsp'], { serverPath: '/opt/m/mercury-lsp', args: ['-v'] }));
    expect(found).toEqual({ command: '/opt/m/mercury-lsp', args: ['-v'], source: 'mercury.server.path' });
  });

  it('expands ~ in mercury.server.path', () => {
    const found = findServerCommand(lookup(['/home/ada/bin/mercury-lsp'], { serverPath: '~/bin/mercury-lsp' }));
    expect(found).toEqual({ command: '/home/ada/bin/mercury-lsp', args: [], source: 'mercury.server.path' });
  });

  it('says in one sentence when mercury.server.path is not executable, and searches no further', () => {
    const found = findServerCommand(lookup(['/usr/bin/mercury-lsp'], { serverPath: '/nowhere/mercury-lsp' }));
    expect(found).toEqual({ problem: 'mercury.server.path points to /nowhere/mercury-lsp, which is not an executable file.' });
  });

  it('takes the mercury-lsp script beside mercury.server.pythonPath', () => {
    const found = findServerCommand(lookup(['/envs/m/bin/mercury-lsp'], { pythonPath: '/envs/m/bin/python3' }));
    expect(found).toEqual({ command: '/envs/m/bin/mercury-lsp', args: [], source: 'mercury.server.pythonPath' });
  });

  it('tells how to install into the chosen interpreter when the script is missing', () => {
    const found = findServerCommand(lookup(['/usr/bin/mercury-lsp'], { pythonPath: '/envs/m/bin/python3' }));
    expect(found).toEqual({
      problem:
        'There is no mercury-lsp beside /envs/m/bin/python3; install it there (`/envs/m/bin/python3 -m pip install .` in the mercury-lsp repository).',
    });
  });
});

describe('findServerCommand searching', () => {
  // One executable in each place the search knows; each test removes the places before the one it expects.
  const everywhere = [
    '/py/sel/bin/mercury-lsp',
    '/proj/.venv/bin/mercury-lsp',
    '/proj/venv/bin/mercury-lsp',
    '/active/env/bin/mercury-lsp',
    '/conda/env/bin/mercury-lsp',
    '/home/ada/.local/share/pipx/venvs/mercury-lsp/bin/mercury-lsp',
    '/usr/local/bin/mercury-lsp',
    '/usr/bin/mercury-lsp',
    '/home/ada/.local/bin/mercury-lsp',
  ];
  const context: Partial<ServerLookup> = {
    selectedInterpreter: '/py/sel/bin/python',
    workspaceFolders: ['/proj'],
    env: { PATH: '/usr/local/bin:/usr/bin', VIRTUAL_ENV: '/active/env', CONDA_PREFIX: '/conda/env' },
  };
  const expected: [string, string][] = [
    ['/py/sel/bin/mercury-lsp', "the Python extension's interpreter (/py/sel/bin/python)"],
    ['/proj/.venv/bin/mercury-lsp', "the workspace's .venv"],
    ['/proj/venv/bin/mercury-lsp', "the workspace's venv"],
    ['/active/env/bin/mercury-lsp', '$VIRTUAL_ENV'],
    ['/conda/env/bin/mercury-lsp', '$CONDA_PREFIX'],
    ['/home/ada/.local/share/pipx/venvs/mercury-lsp/bin/mercury-lsp', 'pipx'],
    ['/usr/local/bin/mercury-lsp', 'PATH'],
    ['/usr/bin/mercury-lsp', 'PATH'],
    ['/home/ada/.local/bin/mercury-lsp', '~/.local/bin'],
  ];

  it.each(expected.map(([command, source], index) => ({ command, source, index })))(
    'finds $command ($source) before the places after it',
    ({ command, source, index }) => {
      const found = findServerCommand(lookup(everywhere.slice(index), context));
      expect(found).toEqual({ command, args: [], source });
    },
  );

  it('looks in PIPX_HOME, the older ~/.local/pipx and PIPX_BIN_DIR for a pipx install', () => {
    expect(findServerCommand(lookup(['/px/venvs/mercury-lsp/bin/mercury-lsp'], { env: { PIPX_HOME: '/px' } }))).toMatchObject({
      source: 'pipx',
    });
    expect(findServerCommand(lookup(['/home/ada/.local/pipx/venvs/mercury-lsp/bin/mercury-lsp']))).toMatchObject({
      source: 'pipx',
    });
    expect(findServerCommand(lookup(['/pxbin/mercury-lsp'], { env: { PIPX_BIN_DIR: '/pxbin' } }))).toMatchObject({
      command: '/pxbin/mercury-lsp',
      source: 'pipx',
    });
  });

  it('uses Windows names on Windows', () => {
    const found = findServerCommand(
      lookup([path.join('C:/envs/m', 'Scripts', 'mercury-lsp.exe')], { pythonPath: 'C:/envs/m/Scripts/python.exe', platform: 'win32' }),
    );
    expect(found).toMatchObject({ command: path.join('C:/envs/m', 'Scripts', 'mercury-lsp.exe') });
  });

  it('names every place it searched and both settings when nothing is found', () => {
    expect(findServerCommand(lookup([], context))).toEqual({
      problem:
        "mercury-lsp was not found (searched the Python extension's interpreter, the workspace's .venv, the workspace's venv, " +
        '$VIRTUAL_ENV, $CONDA_PREFIX, pipx, PATH, ~/.local/bin); install it (`pip install .` or `pipx install .` in the ' +
        'mercury-lsp repository) or set mercury.server.path in your User or Remote settings.',
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
    const found = findServerCommand({ ...lookup([]), isExecutable: undefined, env: {}, workspaceFolders: [folder] });
    expect(found).toEqual({ command: script, args: [], source: "the workspace's .venv" });
  });
});
