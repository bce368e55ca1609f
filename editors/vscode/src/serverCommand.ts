/** Where the `mercury-lsp` executable is: an explicit path, a Python environment, or the usual places. */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ServerLookup {
  /** `mercury.server.path`: the executable to run; empty = search for it. */
  serverPath: string;
  /** `mercury.server.pythonPath`: an interpreter whose environment has mercury-lsp installed. */
  pythonPath: string;
  /** `mercury.server.args`: extra arguments for the server. */
  args: string[];
  workspaceFolders: string[];
  /** The PATH to search, as in `process.env.PATH`. */
  searchPath: string;
  home: string;
  platform: NodeJS.Platform;
  isExecutable?: (file: string) => boolean;
}

export type ServerCommand = { command: string; args: string[] };
export type ServerCommandResult = ServerCommand | { problem: string };

const INSTALL_HINT = 'install it (`pip install .` in the mercury-lsp repository) or set mercury.server.path';

function executableName(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'mercury-lsp.exe' : 'mercury-lsp';
}

/** The folder pip puts console scripts in, for a virtual environment rooted at `venv`. */
function scriptsFolder(venv: string, platform: NodeJS.Platform): string {
  return path.join(venv, platform === 'win32' ? 'Scripts' : 'bin');
}

function expandHome(file: string, home: string): string {
  return file === '~' || file.startsWith('~/') ? path.join(home, file.slice(1)) : file;
}

export function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Candidate executables in the order they are tried when no path is configured. */
function searchCandidates(lookup: ServerLookup): string[] {
  const name = executableName(lookup.platform);
  const venvs = lookup.workspaceFolders.flatMap((folder) => [
    path.join(folder, '.venv'),
    path.join(folder, 'venv'),
  ]);
  const onPath = lookup.searchPath
    .split(path.delimiter)
    .filter((folder) => folder !== '')
    .map((folder) => path.join(folder, name));
  return [
    ...venvs.map((venv) => path.join(scriptsFolder(venv, lookup.platform), name)),
    ...onPath,
    path.join(lookup.home, '.local', 'bin', name),
  ];
}

/** Decide how to start the language server, or say in one sentence why it cannot be found. */
export function findServerCommand(lookup: ServerLookup): ServerCommandResult {
  const isExecutable = lookup.isExecutable ?? isExecutableFile;
  // stdio is the server's default transport, so no flag is needed.
  const args = [...lookup.args];
  const configured = lookup.serverPath.trim();
  if (configured !== '') {
    const command = expandHome(configured, lookup.home);
    if (!isExecutable(command)) {
      return { problem: `mercury.server.path points to ${command}, which is not an executable file.` };
    }
    return { command, args };
  }
  const python = lookup.pythonPath.trim();
  if (python !== '') {
    // pip installs console scripts beside the interpreter, in bin/ (Scripts\ on Windows).
    const command = path.join(path.dirname(expandHome(python, lookup.home)), executableName(lookup.platform));
    if (!isExecutable(command)) {
      return {
        problem: `There is no mercury-lsp beside ${python}; install it there (\`${python} -m pip install .\` in the mercury-lsp repository).`,
      };
    }
    return { command, args };
  }
  const found = searchCandidates(lookup).find((candidate) => isExecutable(candidate));
  if (found === undefined) {
    return { problem: `mercury-lsp was not found on PATH or in the workspace's .venv; ${INSTALL_HINT}.` };
  }
  return { command: found, args };
}
