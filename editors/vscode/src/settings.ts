/**
 * The `mercury` settings object the server reads, built from the settings this extension's package.json
 * declares. The server's settings are generated into package.json from its settings model, so a new
 * server setting needs no change here.
 */

/** The part of `vscode.WorkspaceConfiguration` this module reads. */
export interface ConfigurationReader {
  get<T>(key: string): T | undefined;
}

/** The part of a contributed configuration property this module reads. */
export interface SettingSchema {
  type?: string | string[];
  default?: unknown;
}

/** What the server receives: every declared server setting, and the API key from secret storage. */
export type ServerSettings = Record<string, unknown> & { enabled: boolean; apiKey: string | null };

const SECTION = 'mercury.';

/** Settings of the extension itself (how to start and trace the server); the server never sees them. */
const EXTENSION_ONLY_PREFIXES = ['server.', 'trace.'];

/**
 * The server's settings declared in a package.json: key without `mercury.` → its schema.
 * `contributes.configuration` is one object or a list of them (VS Code accepts both).
 */
export function serverSettingSchemas(manifest: unknown): Map<string, SettingSchema> {
  const configuration = (manifest as { contributes?: { configuration?: unknown } })?.contributes?.configuration;
  const sections = Array.isArray(configuration) ? configuration : [configuration];
  const schemas = new Map<string, SettingSchema>();
  for (const section of sections) {
    const properties = (section as { properties?: Record<string, SettingSchema> } | undefined)?.properties ?? {};
    for (const [name, schema] of Object.entries(properties)) {
      const key = name.slice(SECTION.length);
      if (name.startsWith(SECTION) && !EXTENSION_ONLY_PREFIXES.some((prefix) => key.startsWith(prefix))) {
        schemas.set(key, schema);
      }
    }
  }
  if (!schemas.has('enabled')) {
    throw new Error('package.json declares no mercury.enabled setting: contributes.configuration is incomplete');
  }
  return schemas;
}

function acceptsNull(schema: SettingSchema): boolean {
  return Array.isArray(schema.type) ? schema.type.includes('null') : schema.type === 'null';
}

/** A settings text box left empty means "not set", which the server spells null; paths lose stray spaces. */
function normalized(value: unknown, schema: SettingSchema): unknown {
  if (typeof value !== 'string' || !acceptsNull(schema)) {
    return value;
  }
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

/**
 * Build the settings sent in `initializationOptions.mercury` and `didChangeConfiguration`.
 * `config` is `workspace.getConfiguration('mercury')`; the API key comes from secret storage.
 */
export function serverSettings(
  config: ConfigurationReader,
  schemas: ReadonlyMap<string, SettingSchema>,
  apiKey: string | undefined,
): ServerSettings {
  const settings: Record<string, unknown> = {};
  for (const [key, schema] of schemas) {
    const value = config.get<unknown>(key);
    settings[key] = normalized(value === undefined ? schema.default : value, schema);
  }
  const key = apiKey?.trim();
  settings.apiKey = key ? key : null;
  return settings as ServerSettings;
}
