/**
 * Asking again once the engine can answer. While the engine loads, the server answers every request at once
 * with nothing, and VS Code does not ask again by itself: the suggestion for the keys typed while it loaded
 * would never appear until the user typed again.
 */
import * as vscode from 'vscode';
import type { MercuryStatus } from './status';

/** Whether `current` reports the engine ready after a report that was not (loading, off, error, none yet). */
export function becameReady(previous: MercuryStatus | undefined, current: MercuryStatus): boolean {
  return current.state === 'ready' && previous?.state !== 'ready';
}

/**
 * Whether completions were just switched back on: the server then reports `loading` and reconnects to its
 * engine only when asked for something, so it stays `loading` until the next keystroke unless woken.
 */
export function switchedBackOn(previous: MercuryStatus | undefined, current: MercuryStatus): boolean {
  return previous?.state === 'disabled' && current.state === 'loading';
}

/**
 * Ask VS Code for inline suggestions at the cursor of the editor in focus, if there is one. VS Code fetches
 * again unless it already holds an explicitly requested answer for this very text and cursor.
 */
export async function askForSuggestionsAgain(log: vscode.LogOutputChannel): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    return;
  }
  log.debug(`The engine is ready: asking again for a suggestion in ${editor.document.uri.toString(true)}.`);
  await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
}
