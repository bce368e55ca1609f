/** A recording stand-in for `vscode-languageclient/node`'s LanguageClient (the wire is tested separately). */

export enum State {
  Stopped = 1,
  Starting = 3,
  Running = 2,
}

export const DidChangeConfigurationNotification = {
  type: { method: 'workspace/didChangeConfiguration' },
};

export class LanguageClient {
  static instances: LanguageClient[] = [];
  static startError: Error | undefined;

  readonly notificationHandlers = new Map<string, (params: unknown) => void>();
  readonly sentNotifications: { method: string; params: unknown }[] = [];
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
      middleware: {
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

  async start(): Promise<void> {
    if (LanguageClient.startError !== undefined) {
      throw LanguageClient.startError;
    }
    this.setState(State.Running);
  }

  async stop(): Promise<void> {
    this.setState(State.Stopped);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }

  isRunning(): boolean {
    return this.state === State.Running;
  }

  async sendNotification(type: { method: string }, params: unknown): Promise<void> {
    this.sentNotifications.push({ method: type.method, params });
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
