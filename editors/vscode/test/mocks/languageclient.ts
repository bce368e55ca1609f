/** A recording stand-in for `vscode-languageclient/node`'s LanguageClient (the wire is tested separately). */

export enum State {
  Stopped = 1,
  Starting = 3,
  Running = 2,
}

export const DidChangeConfigurationNotification = {
  type: { method: 'workspace/didChangeConfiguration' },
};

export const InlineCompletionRequest = {
  type: { method: 'textDocument/inlineCompletion' },
};

export enum InlineCompletionTriggerKind {
  Invoked = 1,
  Automatic = 2,
}

export class LanguageClient {
  static instances: LanguageClient[] = [];
  static startError: Error | undefined;
  /** While set, start() waits for it, as a real start waits for the server's initialize answer. */
  static startGate: Promise<void> | undefined;
  /** While set, stop() waits for it, as a real stop waits for the server to shut down. */
  static stopGate: Promise<void> | undefined;
  /** What every client did, in order: `start 1`, `running 1`, `stop 1`, `dispose 1`... */
  static events: string[] = [];
  /** What the server answers to a request method; `{ items: [] }` for the others. */
  static answers = new Map<string, unknown>();

  readonly notificationHandlers = new Map<string, (params: unknown) => void>();
  readonly sentNotifications: { method: string; params: unknown }[] = [];
  readonly sentRequests: { method: string; params: unknown }[] = [];
  private stateListeners: ((event: { oldState: State; newState: State }) => void)[] = [];
  state = State.Stopped;
  disposed = false;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly serverOptions: { command: string; args: string[] },
    readonly clientOptions: {
      initializationOptions: unknown;
      documentSelector: unknown;
      traceOutputChannel?: { logLevel: number };
      stdioOptions?: { stderr: unknown; stdout: unknown };
      middleware: {
        provideInlineCompletionItems: (
          document: unknown,
          position: unknown,
          context: unknown,
          token: unknown,
          next: (...args: unknown[]) => Promise<unknown>,
        ) => Promise<unknown>;
        didClose: (document: unknown, next: (document: unknown) => Promise<void>) => Promise<void>;
        workspace: {
          configuration: (params: unknown, token: unknown, next: (p: unknown, t: unknown) => unknown) => Promise<unknown>;
        };
      };
    },
  ) {
    LanguageClient.instances.push(this);
  }

  onNotification(method: string, handler: (params: unknown) => void): { dispose(): void } {
    this.notificationHandlers.set(method, handler);
    return { dispose: () => this.notificationHandlers.delete(method) };
  }

  onDidChangeState(listener: (event: { oldState: State; newState: State }) => void): { dispose(): void } {
    this.stateListeners.push(listener);
    return { dispose: () => undefined };
  }

  private get number(): number {
    return LanguageClient.instances.indexOf(this) + 1;
  }

  async start(): Promise<void> {
    LanguageClient.events.push(`start ${this.number}`);
    if (LanguageClient.startError !== undefined) {
      throw LanguageClient.startError;
    }
    this.setState(State.Starting);
    await LanguageClient.startGate;
    if (this.disposed) {
      throw new Error("Client got disposed and can't be restarted.");
    }
    this.setState(State.Running);
    LanguageClient.events.push(`running ${this.number}`);
  }

  async stop(): Promise<void> {
    LanguageClient.events.push(`stop ${this.number}`);
    await LanguageClient.stopGate;
    this.setState(State.Stopped);
  }

  async dispose(): Promise<void> {
    LanguageClient.events.push(`dispose ${this.number}`);
    this.disposed = true;
  }

  isRunning(): boolean {
    return this.state === State.Running;
  }

  async sendNotification(type: { method: string }, params: unknown): Promise<void> {
    this.sentNotifications.push({ method: type.method, params });
  }

  async sendRequest(type: string | { method: string }, params: unknown): Promise<unknown> {
    const method = typeof type === 'string' ? type : type.method;
    this.sentRequests.push({ method, params });
    return LanguageClient.answers.has(method) ? LanguageClient.answers.get(method) : { items: [] };
  }

  /** Test hook: the server process went away on its own. */
  crash(): void {
    this.setState(State.Stopped);
  }

  private setState(newState: State): void {
    const oldState = this.state;
    this.state = newState;
    for (const listener of this.stateListeners) {
      listener({ oldState, newState });
    }
  }
}
