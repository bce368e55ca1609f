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
  dispose(): void {
    this.listeners = [];
  }
}

export enum LogLevel {
  Off = 0,
  Trace = 1,
  Debug = 2,
  Info = 3,
  Warning = 4,
  Error = 5,
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
  readonly logLevel = LogLevel.Info;
  readonly onDidChangeLogLevel = new EventEmitter<LogLevel>().event;
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
  replace(text: string): void {
    this.lines.splice(0, this.lines.length, text);
  }
  clear(): void {
    this.lines.length = 0;
  }
  hide(): void {}
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
/** What `inspect` answers for a full key, where a test wants more than the User value (remote windows). */
export const inspections = new Map<string, object>();
const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();
const documentChanged = new EventEmitter<{ document: FakeTextDocument; contentChanges: object[] }>();
const selectionChanged = new EventEmitter<{ textEditor: FakeTextEditor }>();

function affects(changedKey: string, section: string): boolean {
  return changedKey === section || changedKey.startsWith(`${section}.`) || section.startsWith(`${changedKey}.`);
}

export const workspace = {
  workspaceFolders: undefined as { uri: Uri }[] | undefined,
  getConfiguration(section: string) {
    return {
      get<T>(key: string, fallback?: T): T | undefined {
        const full = `${section}.${key}`;
        return settingsStore.has(full) ? (settingsStore.get(full) as T) : fallback;
      },
      inspect<T>(key: string): object | undefined {
        const full = `${section}.${key}`;
        return inspections.get(full) ?? { key: full, globalValue: settingsStore.get(full) as T | undefined };
      },
      async update(key: string, value: unknown, _target?: ConfigurationTarget): Promise<void> {
        const full = `${section}.${key}`;
        settingsStore.set(full, value);
        configurationChanged.fire({ affectsConfiguration: (s: string) => affects(full, s) });
      },
    };
  },
  onDidChangeConfiguration: configurationChanged.event,
  onDidChangeTextDocument: documentChanged.event,
};

export const statusBarItems: FakeStatusBarItem[] = [];
/** Choices the next error messages answer with (undefined: dismissed). */
export const errorMessageAnswers: (string | undefined)[] = [];
export const outputChannels: FakeLogOutputChannel[] = [];
export const shownErrors: string[] = [];
export const shownWarnings: string[] = [];
export const shownErrorChoices: string[][] = [];
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
  async showErrorMessage(message: string, ...items: string[]): Promise<string | undefined> {
    shownErrors.push(message);
    shownErrorChoices.push(items);
    return errorMessageAnswers.shift();
  },
  async showWarningMessage(message: string, ..._items: string[]): Promise<string | undefined> {
    shownWarnings.push(message);
    return undefined;
  },
  activeTextEditor: undefined as { document: { uri: { toString(skipEncoding?: boolean): string } } } | FakeTextEditor | undefined,
  visibleTextEditors: [] as FakeTextEditor[],
  onDidChangeTextEditorSelection: selectionChanged.event,
  createTextEditorDecorationType(options: object): FakeDecorationType {
    const type = new FakeDecorationType(options);
    decorationTypes.push(type);
    return type;
  },
  async showInputBox(_options: object): Promise<string | undefined> {
    return inputBoxAnswers.shift();
  },
};

const registeredCommands = new Map<string, (...args: unknown[]) => unknown>();
/** Commands of VS Code itself that the extension runs, with their arguments, in order. */
export const builtinCommandCalls: { id: string; args: unknown[] }[] = [];
const BUILTIN_COMMANDS = new Set([
  'editor.action.inlineSuggest.trigger',
  'workbench.action.openSettings',
  'workbench.action.openRemoteSettings',
]);

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
    if (run === undefined && BUILTIN_COMMANDS.has(id)) {
      builtinCommandCalls.push({ id, args });
      return undefined;
    }
    if (run === undefined) {
      throw new Error(`command '${id}' not found`);
    }
    return run(...args);
  },
  registered(): string[] {
    return [...registeredCommands.keys()];
  },
};

/** `vscode.env`: remoteName is set in remote windows (code-server, SSH, WSL, containers). */
export const env = { remoteName: undefined as string | undefined };

/** An installed extension as `vscode.extensions.getExtension` returns it. */
export interface FakeExtension {
  isActive: boolean;
  exports: unknown;
  activate(): Promise<unknown>;
}

export const installedExtensions = new Map<string, FakeExtension>();

export const extensions = {
  getExtension(id: string): FakeExtension | undefined {
    return installedExtensions.get(id);
  },
};

export class Uri {
  private constructor(readonly fsPath: string) {}
  static file(fsPath: string): Uri {
    return new Uri(fsPath);
  }
  toString(): string {
    return `file://${this.fsPath}`;
  }
}

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

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(start: Position | number, end: Position | number, endLine?: number, endCharacter?: number) {
    this.start = typeof start === 'number' ? new Position(start, end as number) : start;
    this.end = typeof start === 'number' ? new Position(endLine as number, endCharacter as number) : (end as Position);
  }
  get isEmpty(): boolean {
    return this.start.line === this.end.line && this.start.character === this.end.character;
  }
}

export class Selection extends Range {
  constructor(
    readonly anchor: Position,
    readonly active: Position,
  ) {
    super(anchor, active);
  }
}

export enum OverviewRulerLane {
  Left = 1,
  Center = 2,
  Right = 4,
  Full = 7,
}

export enum TextEditorRevealType {
  Default = 0,
  InCenter = 1,
  InCenterIfOutsideViewport = 2,
  AtTop = 3,
}

export class InlineCompletionItem {
  constructor(
    readonly insertText: string,
    readonly range?: Range,
    readonly command?: { title: string; command: string; arguments?: unknown[] },
  ) {}
}

export class CodeActionKind {
  static readonly QuickFix = new CodeActionKind('quickfix');
  constructor(readonly value: string) {}
}

export class CodeAction {
  command: { title: string; command: string; arguments?: unknown[] } | undefined;
  isPreferred: boolean | undefined;
  constructor(
    readonly title: string,
    readonly kind?: CodeActionKind,
  ) {}
}

export class CancellationTokenSource {
  readonly token = { isCancellationRequested: false };
  cancel(): void {
    this.token.isCancellationRequested = true;
  }
  dispose(): void {}
}

export class FakeDecorationType {
  disposed = false;
  constructor(readonly options: object) {}
  dispose(): void {
    this.disposed = true;
  }
}
export const decorationTypes: FakeDecorationType[] = [];

/** A text document whose text changes through its editor's `edit`, with VS Code's version counting. */
export class FakeTextDocument {
  version = 1;
  constructor(
    readonly uri: Uri,
    public text: string,
  ) {}
  offsetAt(position: Position): number {
    const lines = this.text.split('\n');
    return lines.slice(0, position.line).reduce((sum, line) => sum + line.length + 1, 0) + position.character;
  }
  replace(range: Range, text: string): void {
    const start = this.offsetAt(range.start);
    this.text = this.text.slice(0, start) + text + this.text.slice(this.offsetAt(range.end));
    this.version += 1;
    documentChanged.fire({ document: this, contentChanges: [{ range, text }] });
  }
}

/** An editor that records its decorations (by type) and what it revealed. */
export class FakeTextEditor {
  readonly decorations = new Map<FakeDecorationType, unknown[]>();
  readonly revealed: Range[] = [];
  constructor(
    readonly document: FakeTextDocument,
    public selection: Selection,
  ) {}
  setDecorations(type: FakeDecorationType, ranges: unknown[]): void {
    this.decorations.set(type, ranges);
  }
  async edit(build: (builder: { replace(range: Range, text: string): void }) => void): Promise<boolean> {
    build({ replace: (range, text) => this.document.replace(range, text) });
    return true;
  }
  revealRange(range: Range, _type?: TextEditorRevealType): void {
    this.revealed.push(range);
  }
  /** Test hook: the user moves the cursor. */
  moveCursor(line: number, character: number): void {
    this.selection = new Selection(new Position(line, character), new Position(line, character));
    selectionChanged.fire({ textEditor: this });
  }
}

/** Code action providers registered with `languages`, with their selectors. */
export const codeActionProviders: { selector: unknown; provider: { provideCodeActions(...args: unknown[]): unknown } }[] = [];

export const languages = {
  registerCodeActionsProvider(selector: unknown, provider: { provideCodeActions(...args: unknown[]): unknown }): Disposable {
    const entry = { selector, provider };
    codeActionProviders.push(entry);
    return new Disposable(() => codeActionProviders.splice(codeActionProviders.indexOf(entry), 1));
  },
};

/** Forget everything between tests. */
export function resetFakeVscode(): void {
  window.visibleTextEditors = [];
  decorationTypes.length = 0;
  codeActionProviders.length = 0;
  settingsStore.clear();
  statusBarItems.length = 0;
  outputChannels.length = 0;
  shownErrors.length = 0;
  shownWarnings.length = 0;
  inspections.clear();
  shownErrorChoices.length = 0;
  errorMessageAnswers.length = 0;
  builtinCommandCalls.length = 0;
  installedExtensions.clear();
  env.remoteName = undefined;
  window.activeTextEditor = undefined;
  inputBoxAnswers.length = 0;
  registeredCommands.clear();
  workspace.workspaceFolders = undefined;
}
