/**
 * Next-edit suggestions: after an edit, ask the server where the matching edit goes (`copilotInlineEdit`) and
 * show its answer at its place, struck-through old text beside the new. A replacement on the cursor's line also
 * goes to VS Code's inline completion; every proposal is a Quick Fix ("Apply next edit on line N"), and a hint on
 * the cursor's line names the line of one that is elsewhere. Asked for only while `mercury.nextEdit` is on.
 */
import * as vscode from 'vscode';
import {
  applyTitle,
  COPILOT_INLINE_EDIT,
  firstEdit,
  hintText,
  type InlineEdit,
  onCursorLine,
  shownText,
  type WireRange,
} from './nextEditProposal';

export const APPLY_NEXT_EDIT = 'mercury.applyNextEdit';
export const DISMISS_NEXT_EDIT = 'mercury.dismissNextEdit';
/** Ask once typing pauses, not on every key: each question costs the engine a forward over the window. */
const DEBOUNCE_MS = 300;

/** The part of the server connection next edits need. */
export interface NextEditServer {
  /** Whether the running server has `nextEdit` on. */
  nextEditOn(): boolean;
  /** A request to the running server; undefined when none runs. */
  request(method: string, params: unknown, token: vscode.CancellationToken): Promise<unknown>;
}

interface Proposal {
  uri: string;
  /** The document version it was proposed for: any later version makes it stale. */
  version: number;
  edit: InlineEdit;
}

function toRange(range: WireRange): vscode.Range {
  return new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

/** Where the new text ends once `edit` is applied. */
function endAfter(edit: InlineEdit): vscode.Position {
  const lines = edit.text.split('\n');
  const last = lines[lines.length - 1];
  const start = edit.range.start;
  return lines.length === 1
    ? new vscode.Position(start.line, start.character + last.length)
    : new vscode.Position(start.line + lines.length - 1, last.length);
}

export class NextEdits implements vscode.Disposable {
  private proposal: Proposal | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private inFlight: vscode.CancellationTokenSource | undefined;
  private readonly removed = vscode.window.createTextEditorDecorationType({
    textDecoration: 'line-through',
    backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
    overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.modifiedForeground'),
    overviewRulerLane: vscode.OverviewRulerLane.Right,
  });
  private readonly added = vscode.window.createTextEditorDecorationType({
    after: { backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground') },
  });
  private readonly hint = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    after: { color: new vscode.ThemeColor('editorCodeLens.foreground'), fontStyle: 'italic', margin: '0 0 0 2em' },
  });
  private readonly subscriptions: vscode.Disposable[];

  constructor(
    private readonly server: NextEditServer,
    private readonly log: vscode.LogOutputChannel,
    private readonly debounceMs = DEBOUNCE_MS,
  ) {
    this.subscriptions = [
      vscode.workspace.onDidChangeTextDocument((event) => this.documentChanged(event)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.placeHint(event.textEditor)),
      vscode.languages.registerCodeActionsProvider(
        [{ scheme: 'file' }, { scheme: 'untitled' }],
        { provideCodeActions: (document) => this.codeActions(document) },
        { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] },
      ),
      vscode.commands.registerCommand(APPLY_NEXT_EDIT, () => this.apply()),
      vscode.commands.registerCommand(DISMISS_NEXT_EDIT, () => this.dismiss()),
    ];
  }

  /** The proposal for `document` as it is now, if one is shown. */
  private current(document: vscode.TextDocument): Proposal | undefined {
    const proposal = this.proposal;
    const fresh = proposal?.uri === document.uri.toString() && proposal.version === document.version;
    return fresh ? proposal : undefined;
  }

  /** For the inline completion middleware: the proposal as an item, when it replaces text on the cursor's line. */
  inlineItems(document: vscode.TextDocument, position: vscode.Position): vscode.InlineCompletionItem[] {
    const edit = this.current(document)?.edit;
    if (edit === undefined || !onCursorLine(edit, position.line)) {
      return [];
    }
    const command = edit.command ? { title: edit.command.title, command: edit.command.command, arguments: edit.command.arguments } : undefined;
    return [new vscode.InlineCompletionItem(edit.text, toRange(edit.range), command)];
  }

  /** The Quick Fix that applies the proposal, wherever in the document it is asked for. */
  codeActions(document: vscode.TextDocument): vscode.CodeAction[] {
    const edit = this.current(document)?.edit;
    if (edit === undefined) {
      return [];
    }
    const action = new vscode.CodeAction(applyTitle(edit), vscode.CodeActionKind.QuickFix);
    action.command = { title: applyTitle(edit), command: APPLY_NEXT_EDIT };
    action.isPreferred = true;
    return [action];
  }

  private documentChanged(event: vscode.TextDocumentChangeEvent): void {
    if (event.contentChanges.length === 0) {
      return; // only the dirty state changed
    }
    if (this.proposal?.uri === event.document.uri.toString()) {
      this.clear(); // the text changed under it
    }
    if (this.server.nextEditOn() && vscode.window.activeTextEditor?.document === event.document) {
      this.schedule(event.document);
    }
  }

  private schedule(document: vscode.TextDocument): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const editor = vscode.window.activeTextEditor;
      if (editor?.document === document) {
        void this.ask(editor);
      }
    }, this.debounceMs);
  }

  /** Ask the server for the next edit at the editor's cursor and show what it proposes. */
  async ask(editor: vscode.TextEditor): Promise<void> {
    this.inFlight?.cancel();
    const inFlight = new vscode.CancellationTokenSource();
    this.inFlight = inFlight;
    const document = editor.document;
    const { version } = document;
    const uri = document.uri.toString();
    const { line, character } = editor.selection.active;
    let answer: unknown;
    try {
      answer = await this.server.request(
        COPILOT_INLINE_EDIT,
        { textDocument: { uri, version }, position: { line, character } },
        inFlight.token,
      );
    } catch (error) {
      this.log.debug(`Next edit: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (inFlight.token.isCancellationRequested || document.version !== version) {
      return; // asked again since, or about text that is gone
    }
    const edit = firstEdit(answer, uri);
    if (edit !== undefined) {
      this.show({ uri, version, edit });
    }
  }

  private editorsOf(uri: string): vscode.TextEditor[] {
    return vscode.window.visibleTextEditors.filter((editor) => editor.document.uri.toString() === uri);
  }

  private show(proposal: Proposal): void {
    this.clear();
    this.proposal = proposal;
    const { edit } = proposal;
    const range = toRange(edit.range);
    for (const editor of this.editorsOf(proposal.uri)) {
      editor.setDecorations(this.removed, range.isEmpty ? [] : [range]);
      const after = { range: new vscode.Range(range.end, range.end), renderOptions: { after: { contentText: shownText(edit) } } };
      editor.setDecorations(this.added, edit.text === '' ? [] : [after]);
      this.placeHint(editor);
    }
    const active = vscode.window.activeTextEditor;
    if (active?.document.uri.toString() === proposal.uri && onCursorLine(edit, active.selection.active.line)) {
      void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'); // VS Code asks; the middleware adds it
    }
  }

  /** The hint on the editor's cursor line, naming the proposal's line when the proposal is on another. */
  private placeHint(editor: vscode.TextEditor): void {
    const edit = this.proposal?.uri === editor.document.uri.toString() ? this.proposal.edit : undefined;
    const line = editor.selection.active.line;
    if (edit === undefined || edit.range.start.line === line) {
      editor.setDecorations(this.hint, []);
      return;
    }
    editor.setDecorations(this.hint, [
      { range: new vscode.Range(line, 0, line, 0), renderOptions: { after: { contentText: hintText(edit) } } },
    ]);
  }

  /** Jump to the proposal and apply it, then run the server's command if it sent one. */
  async apply(): Promise<boolean> {
    const proposal = this.proposal;
    const editor = proposal && this.editorsOf(proposal.uri)[0];
    this.clear();
    if (proposal === undefined || editor === undefined || editor.document.version !== proposal.version) {
      return false;
    }
    const { edit } = proposal;
    const applied = await editor.edit((builder) => builder.replace(toRange(edit.range), edit.text));
    if (!applied) {
      return false;
    }
    const end = endAfter(edit);
    editor.selection = new vscode.Selection(end, end);
    editor.revealRange(new vscode.Range(end, end), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
    if (edit.command) {
      await vscode.commands.executeCommand(edit.command.command, ...(edit.command.arguments ?? []));
    }
    return true;
  }

  /** Hide the proposal and forget the question in flight. */
  dismiss(): void {
    clearTimeout(this.timer);
    this.inFlight?.cancel();
    this.clear();
  }

  private clear(): void {
    const proposal = this.proposal;
    this.proposal = undefined;
    for (const editor of proposal ? this.editorsOf(proposal.uri) : []) {
      for (const type of [this.removed, this.added, this.hint]) {
        editor.setDecorations(type, []);
      }
    }
  }

  dispose(): void {
    this.dismiss();
    for (const disposable of [...this.subscriptions, this.removed, this.added, this.hint]) {
      disposable.dispose();
    }
  }
}
