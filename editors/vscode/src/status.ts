/** The status bar item, fed by the server's `mercury/status` notification. */
import * as vscode from 'vscode';

export const STATUS_NOTIFICATION = 'mercury/status';

/** The payload of `mercury/status` (notes/LSP_CONTRACT.md). */
export interface MercuryStatus {
  state: 'loading' | 'ready' | 'error' | 'disabled';
  latencyMs: number | null;
  tokens: number | null;
  steps: number | null;
  tokensPerSecond: number | null;
  message: string | null;
  /** Where the last suggestion came from: the engine, the type-through cache, or nowhere. */
  source?: 'engine' | 'cache' | 'none' | null;
}

export interface StatusView {
  text: string;
  tooltip: string;
  command: string;
  isError: boolean;
}

/** What the item shows: `status` is the server's last report, undefined before the first one. */
export function statusView(status: MercuryStatus | undefined, enabled: boolean): StatusView {
  if (!enabled || status?.state === 'disabled') {
    return {
      text: '$(circle-slash) Mercury',
      tooltip: 'Mercury completions are off. Click to turn them on.',
      command: 'mercury.enable',
      isError: false,
    };
  }
  if (status === undefined) {
    return {
      text: '$(sync~spin) Mercury',
      tooltip: 'Starting the Mercury language server.',
      command: 'mercury.showLog',
      isError: false,
    };
  }
  if (status.state === 'loading') {
    return {
      text: '$(sync~spin) Mercury: loading',
      tooltip: status.message ?? 'The engine is loading its model.',
      command: 'mercury.showLog',
      isError: false,
    };
  }
  if (status.state === 'error') {
    return {
      text: '$(error) Mercury',
      tooltip: `${status.message ?? 'The engine reported an error.'} Click to show the log.`,
      command: 'mercury.showLog',
      isError: true,
    };
  }
  return {
    text: ['$(zap) Mercury', latencyText(status), speedText(status)].filter((part) => part !== '').join(' · '),
    tooltip: `${readyDetail(status)} Click to turn completions off.`,
    command: 'mercury.disable',
    isError: false,
  };
}

/** A cache hit costs no engine time: "cached", not "0 ms". */
function latencyText(status: MercuryStatus): string {
  if (status.source === 'cache') {
    return 'cached';
  }
  return status.latencyMs === null ? '' : `${Math.round(status.latencyMs)} ms`;
}

/** Tokens per second of an engine answer, one decimal below 10 so a slow answer does not read "0 tok/s". */
export function tokensPerSecondText(tokensPerSecond: number | null | undefined): string {
  if (typeof tokensPerSecond !== 'number' || !(tokensPerSecond >= 0.05)) {
    return '';
  }
  const tenths = Math.round(tokensPerSecond * 10) / 10;
  return tenths < 10 ? `${tenths.toFixed(1)} tok/s` : `${Math.round(tokensPerSecond)} tok/s`;
}

function speedText(status: MercuryStatus): string {
  return status.source === 'cache' ? '' : tokensPerSecondText(status.tokensPerSecond);
}

function readyDetail(status: MercuryStatus): string {
  if (status.latencyMs === null) {
    return 'The engine is ready.';
  }
  if (status.source === 'cache') {
    return 'Last completion: from the cache, as typed through.';
  }
  const parts = [
    status.tokens === null ? null : `${status.tokens} tokens`,
    status.steps === null ? null : `${status.steps} steps`,
    `${Math.round(status.latencyMs)} ms`,
  ].filter((part) => part !== null);
  const speed = speedText(status).replace('tok/s', 'tokens/s');
  return `Last completion: ${parts.join(', ')}${speed ? ` (${speed})` : ''}.`;
}

/** Owns the status bar item and remembers the last report and the enabled switch. */
export class StatusBar implements vscode.Disposable {
  private status: MercuryStatus | undefined;
  private enabled = true;
  private readonly item: vscode.StatusBarItem;

  constructor() {
    this.item = vscode.window.createStatusBarItem('mercury.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Mercury';
    this.render();
    this.item.show();
  }

  /** A `mercury/status` notification arrived. */
  update(status: MercuryStatus): void {
    this.status = status;
    this.render();
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  /** A problem found on the client side (no server executable, server exited). */
  showProblem(message: string): void {
    this.update({ state: 'error', latencyMs: null, tokens: null, steps: null, tokensPerSecond: null, message });
  }

  /** Forget the last report, as when the server restarts. */
  reset(): void {
    this.status = undefined;
    this.render();
  }

  private render(): void {
    const view = statusView(this.status, this.enabled);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.command;
    this.item.backgroundColor = view.isError ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
