/** The interpreter the Python extension (ms-python.python) has selected, for finding mercury-lsp beside it. */
import * as vscode from 'vscode';

export const PYTHON_EXTENSION_ID = 'ms-python.python';

/** The part of the Python extension's API used here (its `environments` API, 2023 and later). */
interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
    resolveEnvironment(path: string): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
  };
}

/** Activation of the Python extension is awaited this long at most; the search goes on without it. */
const ACTIVATION_TIMEOUT_MS = 10_000;

function within<T>(promise: Thenable<T>, ms: number): Promise<T | undefined> {
  return Promise.race([
    Promise.resolve(promise),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms)),
  ]);
}

/**
 * The selected interpreter's executable for `resource`'s folder; undefined when the Python extension is
 * not installed, not ready in time, or has no interpreter selected. `log` hears why, for the trace.
 */
export async function selectedInterpreter(
  resource: vscode.Uri | undefined,
  log: (message: string) => void,
): Promise<string | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
  if (extension === undefined) {
    return undefined;
  }
  try {
    const api = extension.isActive ? extension.exports : await within(extension.activate(), ACTIVATION_TIMEOUT_MS);
    const environments = api?.environments;
    if (environments === undefined) {
      log(`The Python extension gave no environments API; its interpreter is not searched.`);
      return undefined;
    }
    const active = environments.getActiveEnvironmentPath(resource);
    const resolved = await within(environments.resolveEnvironment(active.path), ACTIVATION_TIMEOUT_MS);
    return resolved?.executable?.uri?.fsPath ?? active.path;
  } catch (error) {
    log(`The Python extension did not name its interpreter: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}
