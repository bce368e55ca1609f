/** The `mercury` settings object the server reads (notes/LSP_CONTRACT.md), built from VS Code's configuration. */

/** The part of `vscode.WorkspaceConfiguration` this module reads. */
export interface ConfigurationReader {
  get<T>(key: string): T | undefined;
}

export type Backend = 'mercury' | 'openai';
export type Device = 'auto' | 'cpu' | 'cuda';

/** Exactly the keys of the server's settings contract, in its camelCase spelling. */
export interface MercurySettings {
  enabled: boolean;
  enabledLanguages: string[];
  engineUrl: string | null;
  backend: Backend;
  apiKey: string | null;
  remoteModel: string | null;
  autoStart: boolean;
  model: string | null;
  device: Device;
  prefixTokens: number;
  suffixTokens: number;
  extraContextTokens: number;
  maxTokens: number;
  steps: number | null;
  threshold: number | null;
  debounceMs: number;
  debounceMaxMs: number;
  candidates: number;
}

/** The contract's defaults; the extension's contributed defaults must equal these. */
export const DEFAULT_SETTINGS: Readonly<MercurySettings> = Object.freeze({
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
});

/** The VS Code setting that holds each contract key (all under `mercury.`, same name). */
export const CONFIGURED_KEYS = Object.keys(DEFAULT_SETTINGS).filter(
  (key) => key !== 'apiKey',
) as (keyof MercurySettings)[];

/** Empty text in a settings box means "not set", which the server spells null. */
function optionalText(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
}

function valueOf<K extends keyof MercurySettings>(
  config: ConfigurationReader,
  key: K,
): MercurySettings[K] {
  const value = config.get<MercurySettings[K]>(key);
  return value === undefined ? DEFAULT_SETTINGS[key] : value;
}

/**
 * Build the settings sent in `initializationOptions.mercury` and `didChangeConfiguration`.
 * `config` is `workspace.getConfiguration('mercury')`; the API key comes from secret storage.
 */
export function serverSettings(config: ConfigurationReader, apiKey: string | undefined): MercurySettings {
  const settings = { ...DEFAULT_SETTINGS } as MercurySettings;
  for (const key of CONFIGURED_KEYS) {
    (settings as unknown as Record<string, unknown>)[key] = valueOf(config, key);
  }
  settings.engineUrl = optionalText(settings.engineUrl);
  settings.remoteModel = optionalText(settings.remoteModel);
  settings.model = optionalText(settings.model);
  settings.apiKey = optionalText(apiKey);
  return settings;
}
