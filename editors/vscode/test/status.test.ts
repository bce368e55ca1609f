import { beforeEach, describe, expect, it } from 'vitest';
import { type MercuryStatus, StatusBar, statusView } from '../src/status';
import { resetFakeVscode, statusBarItems } from './mocks/vscode';

function status(overrides: Partial<MercuryStatus>): MercuryStatus {
  return { state: 'ready', latencyMs: null, tokens: null, steps: null, tokensPerSecond: null, message: null, ...overrides };
}

describe('statusView', () => {
  it('shows latency and speed after a completion, and offers to turn completions off', () => {
    const view = statusView(status({ latencyMs: 41.6, tokens: 24, steps: 6, tokensPerSecond: 577.2 }), true);
    expect(view.text).toBe('$(zap) Mercury · 42 ms · 577 tok/s');
    expect(view.tooltip).toBe('Last completion: 24 tokens, 6 steps, 42 ms (577 tokens/s). Click to turn completions off.');
    expect(view.command).toBe('mercury.disable');
    expect(view.isError).toBe(false);
  });

  it('shows a slow answer with a decimal, not "0 tok/s", and none when nothing was generated', () => {
    expect(statusView(status({ latencyMs: 19747, tokens: 2, tokensPerSecond: 0.1 }), true).text).toBe(
      '$(zap) Mercury · 19747 ms · 0.1 tok/s',
    );
    expect(statusView(status({ latencyMs: 900, tokens: 0, tokensPerSecond: 0 }), true).text).toBe('$(zap) Mercury · 900 ms');
    expect(statusView(status({ latencyMs: 900, tokensPerSecond: 0.04 }), true).text).toBe('$(zap) Mercury · 900 ms');
    expect(statusView(status({ latencyMs: 300, tokensPerSecond: 9.96 }), true).text).toBe('$(zap) Mercury · 300 ms · 10 tok/s');
  });

  it('shows a cache hit as cached, not as "0 ms"', () => {
    const view = statusView(status({ latencyMs: 0.2, tokens: 8, tokensPerSecond: null, source: 'cache' }), true);
    expect(view.text).toBe('$(zap) Mercury · cached');
    expect(view.tooltip).toBe('Last completion: from the cache, as typed through. Click to turn completions off.');
  });

  it('shows a ready engine that has not completed anything yet', () => {
    expect(statusView(status({}), true).text).toBe('$(zap) Mercury');
    expect(statusView(status({}), true).tooltip).toBe('The engine is ready. Click to turn completions off.');
  });

  it('spins while the engine loads and before the first report', () => {
    expect(statusView(status({ state: 'loading', message: 'Loading model' }), true)).toMatchObject({
      text: '$(sync~spin) Mercury: loading',
      tooltip: 'Loading model',
    });
    expect(statusView(undefined, true).text).toBe('$(sync~spin) Mercury');
  });

  it('marks errors and points to the log', () => {
    const view = statusView(status({ state: 'error', message: 'No model at /m.' }), true);
    expect(view).toEqual({
      text: '$(error) Mercury',
      tooltip: 'No model at /m. Click to show the log.',
      command: 'mercury.showLog',
      isError: true,
    });
  });

  it('shows the off switch whether the user or the server turned completions off', () => {
    expect(statusView(status({ latencyMs: 3 }), false).command).toBe('mercury.enable');
    expect(statusView(status({ state: 'disabled' }), true).text).toBe('$(circle-slash) Mercury');
  });
});

describe('StatusBar', () => {
  beforeEach(resetFakeVscode);

  it('renders every update into one visible item', () => {
    const bar = new StatusBar();
    const [item] = statusBarItems;
    expect(item.visible).toBe(true);
    bar.update(status({ state: 'error', message: 'boom' }));
    expect(item.text).toBe('$(error) Mercury');
    expect(item.backgroundColor?.id).toBe('statusBarItem.errorBackground');
    bar.update(status({ latencyMs: 10, tokensPerSecond: 100 }));
    expect(item.text).toBe('$(zap) Mercury · 10 ms · 100 tok/s');
    expect(item.backgroundColor).toBeUndefined();
    bar.setEnabled(false);
    expect(item.command).toBe('mercury.enable');
    bar.setEnabled(true);
    bar.reset();
    expect(item.text).toBe('$(sync~spin) Mercury');
    bar.dispose();
    expect(item.disposed).toBe(true);
  });
});
