import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { APPLY_NEXT_EDIT, DISMISS_NEXT_EDIT, NextEdits, type NextEditServer } from '../src/nextEdit';
import { applyTitle, firstEdit, hintText, type InlineEdit, onCursorLine, shownText } from '../src/nextEditProposal';
import {
  builtinCommandCalls,
  codeActionProviders,
  commands,
  decorationTypes,
  FakeLogOutputChannel,
  FakeTextDocument,
  FakeTextEditor,
  Position,
  Range,
  resetFakeVscode,
  Selection,
  Uri,
  window,
} from './mocks/vscode';

const URI = 'file:///proj/calc.py';
// The user renames `result` to `item` on line 1 (0-based); the server proposes the same on line 2.
const BEFORE = 'def add(a, b):\n    result = a + b\n    return result\n';
const RENAMED = 'def add(a, b):\n    item = a + b\n    return item\n';

function edit(overrides: Partial<InlineEdit> = {}): InlineEdit {
  return {
    range: { start: { line: 2, character: 11 }, end: { line: 2, character: 17 } },
    text: 'item',
    textDocument: { uri: URI, version: 2 },
    ...overrides,
  };
}

describe('the server answer', () => {
  it('yields its first edit for this document, and nothing for an empty, malformed or foreign answer', () => {
    const second = edit({ text: 'other' });
    expect(firstEdit({ edits: [edit(), second] }, URI)).toEqual(edit());
    expect(firstEdit({ edits: [] }, URI)).toBeUndefined();
    expect(firstEdit(null, URI)).toBeUndefined();
    expect(firstEdit({ edits: [{ text: 'x' }] }, URI)).toBeUndefined();
    expect(firstEdit({ edits: [edit({ textDocument: { uri: 'file:///other.py' } })] }, URI)).toBeUndefined();
  });

  it('belongs to the cursor line only as a one-line replacement there', () => {
    expect(onCursorLine(edit(), 2)).toBe(true);
    expect(onCursorLine(edit(), 1)).toBe(false);
    expect(onCursorLine(edit({ text: 'item\n    x = 1' }), 2)).toBe(false);
    expect(onCursorLine(edit({ range: { start: { line: 2, character: 11 }, end: { line: 3, character: 0 } } }), 2)).toBe(false);
  });

  it('is named by its 1-based line', () => {
    expect(applyTitle(edit())).toBe('Apply next edit on line 3');
    expect(hintText(edit())).toBe('Next edit on line 3: Quick Fix (Ctrl+.) applies it');
    expect(shownText(edit({ text: 'a\nb' }))).toBe('a⏎b');
  });
});

/** A server that records its questions and answers each with the next of `answers`. */
function fakeServer(answers: unknown[], on = true) {
  const asked: { method: string; params: unknown }[] = [];
  const server: NextEditServer = {
    nextEditOn: () => on,
    request: async (method, params) => {
      asked.push({ method, params });
      return answers.shift();
    },
  };
  return { server, asked };
}

async function settle(ms = 5): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

function at(line: number, character: number): Selection {
  return new Selection(new Position(line, character), new Position(line, character));
}

/** An editor on BEFORE, in focus, and the user's rename typed on line 1. */
function renamedInEditor(): FakeTextEditor {
  const editor = new FakeTextEditor(new FakeTextDocument(Uri.file('/proj/calc.py'), BEFORE), at(1, 4));
  window.activeTextEditor = editor;
  window.visibleTextEditors = [editor];
  editor.document.replace(new Range(1, 4, 1, 10), 'item');
  editor.selection = at(1, 8);
  return editor;
}

/** What the editor shows now, by decoration: struck ranges, the new text after them, the hint. */
function shown(editor: FakeTextEditor) {
  const [removed, added, hint] = decorationTypes.map((type) => editor.decorations.get(type) ?? []);
  const text = (options: unknown[]) =>
    options.map((o) => (o as { renderOptions: { after: { contentText: string } } }).renderOptions.after.contentText);
  return { removed, added: text(added), hint: text(hint), hintLines: hint.map((o) => (o as { range: Range }).range.start.line) };
}

let nextEdits: NextEdits | undefined;

function started(server: NextEditServer): NextEdits {
  nextEdits = new NextEdits(server, new FakeLogOutputChannel('Mercury') as never, 0);
  return nextEdits;
}

beforeEach(() => {
  resetFakeVscode();
});

afterEach(() => {
  nextEdits?.dispose();
  nextEdits = undefined;
});

describe('next edits in the editor', () => {
  it('after an edit, asks at the cursor and shows an edit on another line struck through, with a hint naming its line', async () => {
    const { server, asked } = fakeServer([{ edits: [edit()] }]);
    started(server);
    const editor = renamedInEditor();
    await settle();
    expect(asked).toEqual([{
      method: 'textDocument/copilotInlineEdit',
      params: { textDocument: { uri: URI, version: 2 }, position: { line: 1, character: 8 } },
    }]);
    expect(shown(editor)).toEqual({
      removed: [new Range(2, 11, 2, 17)],
      added: ['item'],
      hint: ['Next edit on line 3: Quick Fix (Ctrl+.) applies it'],
      hintLines: [1],
    });
    expect(builtinCommandCalls).toEqual([]); // not on the cursor's line: no inline suggestion
    const actions = codeActionProviders[0].provider.provideCodeActions(editor.document) as { title: string }[];
    expect(actions.map((a) => a.title)).toEqual(['Apply next edit on line 3']);
  });

  it('the Quick Fix jumps to the edit and applies it, and the decorations go', async () => {
    const { server } = fakeServer([{ edits: [edit()] }]);
    started(server);
    const editor = renamedInEditor();
    await settle();
    const [action] = codeActionProviders[0].provider.provideCodeActions(editor.document) as {
      command: { command: string };
    }[];
    expect(await commands.executeCommand(action.command.command)).toBe(true);
    expect(editor.document.text).toBe(RENAMED);
    expect(editor.selection.active).toEqual(new Position(2, 15));
    expect(editor.revealed).toEqual([new Range(2, 15, 2, 15)]);
    expect(shown(editor)).toEqual({ removed: [], added: [], hint: [], hintLines: [] });
  });

  it('runs the command the server sent with the edit after applying it', async () => {
    const ran: unknown[][] = [];
    commands.registerCommand('server.accepted', (...args: unknown[]) => ran.push(args));
    const command = { title: 'accepted', command: 'server.accepted', arguments: ['id-1'] };
    const { server } = fakeServer([{ edits: [edit({ command })] }]);
    started(server);
    renamedInEditor();
    await settle();
    await commands.executeCommand(APPLY_NEXT_EDIT);
    expect(ran).toEqual([['id-1']]);
  });

  it('offers an edit on the cursor line as an inline completion too, and asks VS Code to show it', async () => {
    const sameLine = edit({ range: { start: { line: 1, character: 12 }, end: { line: 1, character: 17 } }, text: 'a * b' });
    const { server } = fakeServer([{ edits: [sameLine] }]);
    const next = started(server);
    const editor = renamedInEditor();
    await settle();
    expect(builtinCommandCalls).toEqual([{ id: 'editor.action.inlineSuggest.trigger', args: [] }]);
    expect(next.inlineItems(editor.document as never, new Position(1, 8) as never)).toEqual([
      { insertText: 'a * b', range: new Range(1, 12, 1, 17), command: undefined },
    ]);
    expect(next.inlineItems(editor.document as never, new Position(0, 0) as never)).toEqual([]);
    expect(shown(editor).hint).toEqual([]); // it is on the cursor's line
  });

  it('moves the hint with the cursor, and drops it on the edit line', async () => {
    const { server } = fakeServer([{ edits: [edit()] }]);
    started(server);
    const editor = renamedInEditor();
    await settle();
    editor.moveCursor(0, 3);
    expect(shown(editor).hintLines).toEqual([0]);
    editor.moveCursor(2, 0);
    expect(shown(editor).hint).toEqual([]);
  });

  it('clears a proposal when the text changes under it, and applies nothing stale', async () => {
    const { server, asked } = fakeServer([{ edits: [edit()] }, { edits: [] }]);
    started(server);
    const editor = renamedInEditor();
    await settle();
    editor.document.replace(new Range(0, 0, 0, 0), '# ');
    expect(shown(editor).removed).toEqual([]);
    expect(codeActionProviders[0].provider.provideCodeActions(editor.document)).toEqual([]);
    expect(await commands.executeCommand(APPLY_NEXT_EDIT)).toBe(false);
    await settle();
    expect(asked).toHaveLength(2); // and asks about the new text
  });

  it('drops an answer about a version that is gone', async () => {
    let answer: (value: unknown) => void = () => undefined;
    const server: NextEditServer = {
      nextEditOn: () => true,
      request: () => new Promise((resolve) => { answer = resolve; }),
    };
    started(server);
    const editor = renamedInEditor();
    await settle();
    editor.document.version += 1; // typed on while the server thought
    answer({ edits: [edit()] });
    await settle();
    expect(shown(editor).removed).toEqual([]);
  });

  it('dismisses on command, and asks nothing while next edits are off', async () => {
    const { server } = fakeServer([{ edits: [edit()] }]);
    started(server);
    const editor = renamedInEditor();
    await settle();
    await commands.executeCommand(DISMISS_NEXT_EDIT);
    expect(shown(editor)).toEqual({ removed: [], added: [], hint: [], hintLines: [] });
    nextEdits?.dispose();
    resetFakeVscode();
    const off = fakeServer([{ edits: [edit()] }], false);
    started(off.server);
    renamedInEditor();
    await settle();
    expect(off.asked).toEqual([]);
  });
});
