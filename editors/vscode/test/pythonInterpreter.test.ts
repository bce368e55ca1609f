import { beforeEach, describe, expect, it } from 'vitest';
import { PYTHON_EXTENSION_ID, selectedInterpreter } from '../src/pythonInterpreter';
import { installedExtensions, resetFakeVscode, Uri } from './mocks/vscode';

/** The Python extension's `environments` API, answering with `interpreter` for any folder. */
function pythonExtension(interpreter: string, active = true) {
  const asked: (string | undefined)[] = [];
  const api = {
    environments: {
      getActiveEnvironmentPath: (resource?: Uri) => {
        asked.push(resource?.fsPath);
        return { id: 'x', path: interpreter };
      },
      resolveEnvironment: async (envPath: string) => ({ executable: { uri: Uri.file(`${envPath}-resolved`) } }),
    },
  };
  const extension = { isActive: active, exports: active ? api : undefined, activate: async () => api };
  installedExtensions.set(PYTHON_EXTENSION_ID, extension);
  return asked;
}

beforeEach(resetFakeVscode);

describe('selectedInterpreter', () => {
  it('is undefined without the Python extension', async () => {
    expect(await selectedInterpreter(undefined, () => undefined)).toBeUndefined();
  });

  it("asks the Python extension for the folder's interpreter, resolved to its executable", async () => {
    const asked = pythonExtension('/proj/.venv/bin/python');
    expect(await selectedInterpreter(Uri.file('/proj') as never, () => undefined)).toBe('/proj/.venv/bin/python-resolved');
    expect(asked).toEqual(['/proj']);
  });

  it('activates the Python extension when it is installed but not yet active', async () => {
    pythonExtension('/env/bin/python', false);
    expect(await selectedInterpreter(undefined, () => undefined)).toBe('/env/bin/python-resolved');
  });

  it('logs and gives up when the Python extension fails', async () => {
    installedExtensions.set(PYTHON_EXTENSION_ID, {
      isActive: true,
      exports: { environments: { getActiveEnvironmentPath: () => { throw new Error('no interpreter'); } } },
      activate: async () => undefined,
    });
    const lines: string[] = [];
    expect(await selectedInterpreter(undefined, (line) => lines.push(line))).toBeUndefined();
    expect(lines).toEqual(['The Python extension did not name its interpreter: no interpreter']);
  });
});
