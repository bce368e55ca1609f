/**
 * The server's next-edit answer (Copilot's `textDocument/copilotInlineEdit`) and what the editor makes of it:
 * which edit to show, whether it belongs to the cursor's line, and the words that name its line.
 */

export const COPILOT_INLINE_EDIT = 'textDocument/copilotInlineEdit';

export interface WirePosition {
  line: number;
  character: number;
}

export interface WireRange {
  start: WirePosition;
  end: WirePosition;
}

/** An LSP command the server asks to run after the edit is applied. */
export interface WireCommand {
  title: string;
  command: string;
  arguments?: unknown[];
}

/** One proposed edit: replace `range` of the document version in `textDocument` by `text`. */
export interface InlineEdit {
  range: WireRange;
  text: string;
  textDocument: { uri: string; version?: number | null };
  command?: WireCommand | null;
}

/**
 * The first edit of an answer that proposes one for `uri`, undefined otherwise. Several edits are alternatives;
 * the server sends one, and the editor shows one.
 */
export function firstEdit(answer: unknown, uri: string): InlineEdit | undefined {
  const edits = (answer as { edits?: unknown } | null | undefined)?.edits;
  if (!Array.isArray(edits)) {
    return undefined;
  }
  const [edit] = edits as InlineEdit[];
  const wellFormed =
    edit !== undefined &&
    typeof edit.text === 'string' &&
    typeof edit.range?.start?.line === 'number' &&
    typeof edit.range?.end?.line === 'number';
  if (!wellFormed || (edit.textDocument?.uri !== undefined && edit.textDocument.uri !== uri)) {
    return undefined;
  }
  return edit;
}

/**
 * Whether VS Code's inline completion can carry the edit at a cursor on `cursorLine`: a replacement within
 * that one line. Anything else is shown as a decoration and offered as a code action.
 */
export function onCursorLine(edit: InlineEdit, cursorLine: number): boolean {
  return edit.range.start.line === cursorLine && edit.range.end.line === cursorLine && !edit.text.includes('\n');
}

/** The 1-based line the edit starts on, as editors number lines. */
export function editLine(edit: InlineEdit): number {
  return edit.range.start.line + 1;
}

/** The code action's title. */
export function applyTitle(edit: InlineEdit): string {
  return `Apply next edit on line ${editLine(edit)}`;
}

/** The hint at the end of the cursor's line when the edit is elsewhere. */
export function hintText(edit: InlineEdit): string {
  return `Next edit on line ${editLine(edit)}: Quick Fix (Ctrl+.) applies it`;
}

/** The new text as one line of decoration: line breaks shown as ⏎. */
export function shownText(edit: InlineEdit): string {
  return edit.text.replace(/\r?\n/g, '⏎');
}
