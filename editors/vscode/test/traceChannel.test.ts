import { beforeEach, describe, expect, it } from 'vitest';
import { SettingTraceChannel, traceSetting } from '../src/traceChannel';
import { FakeLogOutputChannel, LogLevel, resetFakeVscode, settingsStore } from './mocks/vscode';

beforeEach(resetFakeVscode);

describe('SettingTraceChannel', () => {
  it('reports Trace to the language client while mercury.trace.server is on, Off otherwise', () => {
    expect(traceSetting()).toBe('off');
    const log = new FakeLogOutputChannel('Mercury');
    const channel = new SettingTraceChannel(log as never);
    expect(channel.logLevel).toBe(LogLevel.Off);
    settingsStore.set('mercury.trace.server', 'messages');
    const seen: LogLevel[] = [];
    channel.onDidChangeLogLevel((level) => seen.push(level));
    channel.refresh();
    expect(channel.logLevel).toBe(LogLevel.Trace);
    settingsStore.set('mercury.trace.server', 'verbose');
    channel.refresh();
    settingsStore.set('mercury.trace.server', 'off');
    channel.refresh();
    // The client re-sends $/setTrace on each change of level, not on messages -> verbose (it reads that itself).
    expect(seen).toEqual([LogLevel.Trace, LogLevel.Off]);
  });

  it('writes traced traffic into the Mercury log at a level that log shows, and only while tracing', () => {
    const log = new FakeLogOutputChannel('Mercury');
    settingsStore.set('mercury.trace.server', 'messages');
    const channel = new SettingTraceChannel(log as never);
    channel.trace("[Trace - 10:00:00] Sending request 'initialize - (0)'.");
    settingsStore.set('mercury.trace.server', 'off');
    channel.refresh();
    channel.trace('[Trace - 10:00:01] dropped');
    channel.warn('a warning');
    expect(log.lines).toEqual(["info [Trace - 10:00:00] Sending request 'initialize - (0)'.", 'warn a warning']);
    expect(channel.name).toBe('Mercury');
  });

  it('treats an unknown setting value as off', () => {
    settingsStore.set('mercury.trace.server', 'loud');
    expect(new SettingTraceChannel(new FakeLogOutputChannel('Mercury') as never).logLevel).toBe(LogLevel.Off);
  });
});
