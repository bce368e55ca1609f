/**
 * Where the `mercury-lsp` executable is: an explicit setting, else the first of the places a Python user
 * installs it. Nothing here relies on PATH alone: code-server and remote windows give the extension host a
 * login shell's PATH, which has lost the virtual environment the editor was started from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ServerLookup {
  /** `mercury.server.path`: the executable to run; empty = search for it. */
  serverPath: string;
  /** `mercury.server.pythonPath`: an interpreter whose environment has mercury-lsp installed. */
  pythonPath: string;
  /** `mercury.server.args`: extra arguments for the server. */
  args: string[];
  /** The interpreter the Python extension has selected for the workspace, when it is installed. */
  selectedInterpreter?: string;
  workspaceFolders: string[];
  /** The extension host's environment: PATH, VIRTUAL_ENV, CONDA_PREFIX, PIPX_HOME, PIPX_BIN_DIR, XDG_DATA_HOME. */
  env: Record<string, string | undefined>;
  home: string;
  platform: NodeJS.Platform;
  isExecutable?: (file: string) => boolean;
}

/** The executable, its arguments, and where it was found, in words for the log. */
export type ServerCommand = { command: string; args: string[]; source: string };
export type ServerCommandResult = ServerCommand | { problem: string };

/** One place to look, in the words the log and the error message use. */
interface Candidate {
  source: string;
  command: string;
}

const PACKAGE = 'mercury-lsp';

function executableName(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'mercury-lsp.exe' : 'mercury-lsp';
}

/** The folder pip puts console scripts in, for an environment rooted at `prefix`. */
function scriptsFolder(prefix: string, platform: NodeJS.Platform): string {
  return path.join(prefix, platform === 'win32' ? 'Scripts' : 'bin');
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

/** pip installs console scripts beside the interpreter (bin/, Scripts\ on Windows). */
function besideInterpreter(python: string, lookup: ServerLookup): string {
  return path.join(path.dirname(expandHome(python, lookup.home)), executableName(lookup.platform));
}

/** pipx keeps one virtual environment per package under PIPX_HOME (~/.local/share/pipx since 1.3, ~/.local/pipx before). */
function pipxCandidates(lookup: ServerLookup): string[] {
  const { env, home, platform } = lookup;
  const homes = [
    env.PIPX_HOME,
    path.join(env.XDG_DATA_HOME || path.join(home, '.local', 'share'), 'pipx'),
    path.join(home, '.local', 'pipx'),
  ].filter((folder): folder is string => Boolean(folder));
  const name = executableName(platform);
  return [
    ...homes.map((pipxHome) => path.join(scriptsFolder(path.join(pipxHome, 'venvs', PACKAGE), platform), name)),
    ...(env.PIPX_BIN_DIR ? [path.join(env.PIPX_BIN_DIR, name)] : []),
  ];
}

/** The places tried, in order, when neither setting names the server. */
function searchCandidates(lookup: ServerLookup): Candidate[] {
  const name = executableName(lookup.platform);
  const candidates: Candidate[] = [];
  if (lookup.selectedInterpreter) {
    candidates.push({
      source: `the Python extension's interpreter (${lookup.selectedInterpreter})`,
      command: besideInterpreter(lookup.selectedInterpreter, lookup),
    });
  }
  for (const folder of lookup.workspaceFolders) {
    for (const venv of ['.venv', 'venv']) {
      candidates.push({
        source: `the workspace's ${venv}`,
        command: path.join(scriptsFolder(path.join(folder, venv), lookup.platform), name),
      });
    }
  }
  for (const variable of ['VIRTUAL_ENV', 'CONDA_PREFIX']) {
    const prefix = lookup.env[variable];
    if (prefix) {
      candidates.push({ source: `$${variable}`, command: path.join(scriptsFolder(prefix, lookup.platform), name) });
    }
  }
  candidates.push(...pipxCandidates(lookup).map((command) => ({ source: 'pipx', command })));
  for (const folder of (lookup.env.PATH ?? '').split(path.delimiter).filter((entry) => entry !== '')) {
    candidates.push({ source: 'PATH', command: path.join(folder, name) });
  }
  candidates.push({ source: '~/.local/bin', command: path.join(lookup.home, '.local', 'bin', name) });
  return candidates;
}

/** The places searched, each named once, for the message that says nothing was found. */
function searchedPlaces(candidates: Candidate[]): string {
  const places = [...new Set(candidates.map((candidate) => candidate.source.replace(/ \(.*\)$/, '')))];
  return places.join(', ');
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
    return { command, args, source: 'mercury.server.path' };
  }
  const python = lookup.pythonPath.trim();
  if (python !== '') {
    const command = besideInterpreter(python, lookup);
    if (!isExecutable(command)) {
      return {
        problem: `There is no mercury-lsp beside ${python}; install it there (\`${python} -m pip install .\` in the mercury-lsp repository).`,
      };
    }
    return { command, args, source: 'mercury.server.pythonPath' };
  }
  const candidates = searchCandidates(lookup);
  const found = candidates.find((candidate) => isExecutable(candidate.command));
  if (found === undefined) {
    return {
      problem:
        `mercury-lsp was not found (searched ${searchedPlaces(candidates)}); install it (\`pip install .\` or ` +
        '`pipx install .` in the mercury-lsp repository) or set mercury.server.path in your User or Remote settings.',
    };
  }
  return { command: found.command, args, source: found.source };
}
