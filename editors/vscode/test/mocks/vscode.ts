/** An in-memory stand-in for the parts of the `vscode` API the extension uses. */

type Listener<T> = (event: T) => unknown;

export class Disposable {
  constructor(private readonly onDispose: () => void = () => undefined) {}
  dispose(): void {
    this.onDispose();
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  readonly event = (listener: Listener<T>): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  fire(event: T): void {
    for (const listener of [...this.listeners]) {
      listener(event);
    }
  }
}

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class FakeStatusBarItem {
  text = '';
  tooltip: string | undefined;
  command: string | undefined;
  name: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible = false;
  disposed = false;
  constructor(
    readonly id: string,
    readonly alignment: StatusBarAlignment,
    readonly priority: number,
  ) {}
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  dispose(): void {
    this.disposed = true;
  }
}

export class FakeLogOutputChannel {
  readonly lines: string[] = [];
  shown = 0;
  constructor(readonly name: string) {}
  info(message: string): void {
    this.lines.push(`info ${message}`);
  }
  error(message: string): void {
    this.lines.push(`error ${message}`);
  }
  warn(message: string): void {
    this.lines.push(`warn ${message}`);
  }
  debug(message: string): void {
    this.lines.push(`debug ${message}`);
  }
  trace(message: string): void {
    this.lines.push(`trace ${message}`);
  }
  append(text: string): void {
    this.lines.push(text);
  }
  appendLine(text: string): void {
    this.lines.push(text);
  }
  show(): void {
    this.shown += 1;
  }
  dispose(): void {}
}

/** Settings live in one flat map of full keys (`mercury.maxTokens`); `update` fires the change event. */
export const settingsStore = new Map<string, unknown>();
const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

function affects(changedKey: string, section: string): boolean {
  return changedKey === section || changedKey.startsWith(`${section}.`) || section.startsWith(`${changedKey}.`);
}

export const workspace = {
  workspaceFolders: undefined as { uri: { fsPath: string } }[] | undefined,
  getConfiguration(section: string) {
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const full = `${section}.${key}`;
        return settingsStore.has(full) ? (settingsStore.get(full) as T) : fallback;
      },
      async update(key: string, value: unknown, _target?: ConfigurationTarget): Promise<void> {
        const full = `${section}.${key}`;
        settingsStore.set(full, value);
        configurationChanged.fire({ affectsConfiguration: (s: string) => affects(full, s) });
      },
    };
  },
  onDidChangeConfiguration: configurationChanged.event,
};

export const statusBarItems: FakeStatusBarItem[] = [];
export const outputChannels: FakeLogOutputChannel[] = [];
export const shownErrors: string[] = [];
export const inputBoxAnswers: (string | undefined)[] = [];

export const window = {
  createStatusBarItem(id: string, alignment: StatusBarAlignment, priority: number): FakeStatusBarItem {
    const item = new FakeStatusBarItem(id, alignment, priority);
    statusBarItems.push(item);
    return item;
  },
  createOutputChannel(name: string, _options: { log: true }): FakeLogOutputChannel {
    const channel = new FakeLogOutputChannel(name);
    outputChannels.push(channel);
    return channel;
  },
  async showErrorMessage(message: string, ..._items: string[]): Promise<string | undefined> {
    shownErrors.push(message);
    return undefined;
  },
  async showInputBox(_options: object): Promise<string | undefined> {
    return inputBoxAnswers.shift();
  },
};

const registeredCommands = new Map<string, (...args: unknown[]) => unknown>();

export const commands = {
  registerCommand(id: string, run: (...args: unknown[]) => unknown): Disposable {
    if (registeredCommands.has(id)) {
      throw new Error(`command '${id}' already exists`);
    }
    registeredCommands.set(id, run);
    return new Disposable(() => registeredCommands.delete(id));
  },
  async executeCommand(id: string, ...args: unknown[]): Promise<unknown> {
    const run = registeredCommands.get(id);
    if (run === undefined) {
      throw new Error(`command '${id}' not found`);
    }
    return run(...args);
  },
  registered(): string[] {
    return [...registeredCommands.keys()];
  },
};

/** Secret storage with the same change event as VS Code's. */
export class FakeSecretStorage {
  readonly values = new Map<string, string>();
  private readonly changed = new EventEmitter<{ key: string }>();
  readonly onDidChange = this.changed.event;
  async get(key: string): Promise<string | undefined> {
    return this.values.get(key);
  }
  async store(key: string, value: string): Promise<void> {
    this.values.set(key, value);
    this.changed.fire({ key });
  }
  async delete(key: string): Promise<void> {
    this.values.delete(key);
    this.changed.fire({ key });
  }
}

/** Forget everything between tests. */
export function resetFakeVscode(): void {
  settingsStore.clear();
  statusBarItems.length = 0;
  outputChannels.length = 0;
  shownErrors.length = 0;
  inputBoxAnswers.length = 0;
  registeredCommands.clear();
  workspace.workspaceFolders = undefined;
}
