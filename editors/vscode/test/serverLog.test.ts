import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { StderrLevels, stdioOptions } from '../src/serverLog';
import { FakeLogOutputChannel } from './mocks/vscode';

describe('StderrLevels', () => {
  it('reads the level a server record names, and keeps it for the record’s continuation lines', () => {
    const levels = new StderrLevels();
    const lines = [
      'mercury-lsp WARNING pygls.protocol.json_rpc: Cancel notification for unknown message id "7"',
      'mercury-lsp INFO mercury_lsp.lifecycle: engine ready',
      'mercury-lsp DEBUG mercury_lsp.completer: request 3',
      'mercury-lsp ERROR mercury_lsp.server: boom',
      '  File "x.py", line 1, in <module>',
      'mercury-lsp CRITICAL root: down',
    ];
    expect(lines.map((line) => levels.levelOf(line))).toEqual(['warn', 'info', 'debug', 'error', 'error', 'error']);
  });

  it('marks an uncaught traceback and unknown output as errors', () => {
    const levels = new StderrLevels();
    expect(levels.levelOf('something the server did not format')).toBe('error');
    levels.levelOf('mercury-lsp INFO x: fine');
    expect(levels.levelOf('Traceback (most recent call last):')).toBe('error');
    expect(levels.levelOf('ImportError: no module')).toBe('error');
  });
});

describe('stdioOptions', () => {
  it('writes each stderr line to the log at its level', async () => {
    const log = new FakeLogOutputChannel('Mercury');
    const stderr = new PassThrough();
    stdioOptions.stderr(stderr, log as never);
    stderr.end('mercury-lsp WARNING pygls: careful\nmercury-lsp INFO m: hello\n');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(log.lines).toEqual(['warn mercury-lsp WARNING pygls: careful', 'info mercury-lsp INFO m: hello']);
  });
});
