/**
 * The server's stderr in the Mercury log, each line at the level it names.
 *
 * The server sends its log records as `window/logMessage`, typed; stderr carries what came before the
 * connection and what bypasses logging (a crash's traceback). vscode-languageclient would mark every
 * stderr line `[error]`, warnings included.
 */
import * as readline from 'node:readline';
import type * as stream from 'node:stream';
import type * as vscode from 'vscode';

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error';

/** The server's stderr format: `mercury-lsp LEVEL logger: message` (mercury_lsp/log_bridge.py). */
const RECORD = /^mercury-lsp (DEBUG|INFO|WARNING|ERROR|CRITICAL) /;
const LEVELS: Record<string, LogLevelName> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  ERROR: 'error',
  CRITICAL: 'error',
};

/**
 * Reads stderr line by line: a record's first line names its level, its continuation lines (an
 * exception's traceback) keep it, and anything else (an uncaught traceback) is an error.
 */
export class StderrLevels {
  private current: LogLevelName = 'error';

  levelOf(line: string): LogLevelName {
    const record = RECORD.exec(line);
    if (record !== null) {
      this.current = LEVELS[record[1]];
    } else if (line.startsWith('Traceback (most recent call last)')) {
      this.current = 'error';
    }
    return this.current;
  }
}

function eachLine(input: stream.Readable, onLine: (line: string) => void): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on('line', onLine);
}

/** vscode-languageclient's `stdioOptions`: stdout as its default does (it only carries non-LSP output), stderr by level. */
export const stdioOptions = {
  stdout: (input: stream.Readable, log: vscode.LogOutputChannel): void => eachLine(input, (line) => log.info(line)),
  stderr: (input: stream.Readable, log: vscode.LogOutputChannel): void => {
    const levels = new StderrLevels();
    eachLine(input, (line) => log[levels.levelOf(line)](line));
  },
};
