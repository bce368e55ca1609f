"""The pygls language server: thin handlers between LSP messages and the Completer."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter

from mercury_lsp import __version__
from mercury_lsp.completer import Completer, Suggestions, next_edit
from mercury_lsp.engine_client import EngineError
from mercury_lsp.lifecycle import EngineLink, State
from mercury_lsp.protocol import MercuryProtocol
from mercury_lsp.settings import Settings, TriggerKind, mercury_section, parse_settings

log = logging.getLogger(__name__)

STATUS = "mercury/status"
COPILOT_INLINE_EDIT = "textDocument/copilotInlineEdit"  # Copilot's next-edit request (sidekick.nvim, copilot-lsp)
FILL_COMMAND = "mercury.fill"
FILL_TITLE = "Regenerate selection"
REQUEST_FAILED = -32803  # LSP: a well-formed request that could not be served
CONVERTER = default_converter()


class MercuryLanguageServer(LanguageServer):
    """Inline completions, completion items and selection fills from the diffusion engine."""

    def __init__(self) -> None:
        super().__init__(
            "mercury-lsp", __version__, protocol_cls=MercuryProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.engine = EngineLink(Settings(), self._engine_changed)
        self.completer = Completer(self.engine, self._publish_result)
        self._shown_errors: set[str] = set()
        self._progress_token: str | None = None
        self._progress_lock = asyncio.Lock()

    # Client-facing side effects --------------------------------------------------------------

    def report_server_error(self, error: Exception, source: Any) -> None:
        # pygls would pop a message per failed notification; the log is the place for those.
        log.error("%s: %s", getattr(source, "__name__", source), error)

    def show_once(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        """window/showMessage, but never twice for the same text until the engine recovers."""
        if message in self._shown_errors:
            return
        self._shown_errors.add(message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"Mercury: {message}"))

    def send_status(self, state: State, suggestions: Suggestions | None = None, message: str | None = None) -> None:
        result = suggestions.result if suggestions else None
        tokens = result.tokens if result else None
        seconds = (result.engine_ms or result.round_trip_ms) / 1000 if result else None
        self.protocol.notify(STATUS, {
            "state": state,
            "latencyMs": round(suggestions.latency_ms, 3) if suggestions else None,
            "tokens": tokens,
            "steps": result.steps if result else None,
            "tokensPerSecond": round(tokens / seconds, 1) if tokens and seconds else None,
            "message": message,
            "source": suggestions.source if suggestions else None,
            "engineMs": result.engine_ms if result else None,
            "engineRoundTripMs": round(result.round_trip_ms, 3) if result else None,
        })

    def _publish_result(self, suggestions: Suggestions) -> None:
        error = suggestions.error
        state = self.engine.state
        # After the answer: pygls registered its reply on the request's task first, and done
        # callbacks run in the order they were added.
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: self.send_status(state, suggestions, str(error) if error else None))
        else:
            self.send_status(state, suggestions, str(error) if error else None)
        # A refused request (bad option, prompt too long) repeats on every keystroke: say it once.
        # Lost connections restart the engine; 429/503 pass on their own.
        if error and not error.unreachable and error.status not in (429, 503):
            self.show_once(str(error))

    def _engine_changed(self, state: State, message: str | None) -> None:
        if state == "ready":
            self._shown_errors.clear()
        self.send_status(state, message=message)
        if state == "error" and message:
            self.show_once(message)
        asyncio.ensure_future(self._update_progress(state, message))

    async def _update_progress(self, state: State, message: str | None) -> None:
        """$/progress while the engine loads, for clients that support server-initiated progress."""
        window = self.client_capabilities.window
        if not (window and window.work_done_progress):
            return
        async with self._progress_lock:
            progress = self.work_done_progress
            if state == "loading" and self._progress_token is None:
                token = f"mercury-engine-{uuid.uuid4().hex[:8]}"
                try:
                    await progress.create_async(token)
                except Exception as error:  # a client may refuse; loading goes on regardless
                    log.warning("progress not created: %s", error)
                    return
                self._progress_token = token
                progress.begin(token, types.WorkDoneProgressBegin(title="Mercury engine", message=message))
            elif state == "loading" and self._progress_token is not None:
                progress.report(self._progress_token, types.WorkDoneProgressReport(message=message))
            elif state != "loading" and self._progress_token is not None:
                progress.end(self._progress_token, types.WorkDoneProgressEnd(message=message or state))
                self._progress_token = None

    def apply_settings(self, raw: Any) -> None:
        settings, problems = parse_settings(raw, self.completer.settings)
        for problem in problems:
            self.show_once(problem, types.MessageType.Warning)
        self.completer.configure(settings)  # the engine link reports a change to or from disabled


server = MercuryLanguageServer()


# Lifecycle -----------------------------------------------------------------------------------

@server.feature(types.INITIALIZE)
def initialize(ls: MercuryLanguageServer, params: types.InitializeParams) -> None:
    encoding = ls.workspace.position_encoding
    ls.completer.encoding = getattr(encoding, "value", encoding) or "utf-16"
    ls.completer.root = ls.workspace.root_path
    ls.apply_settings(mercury_section(params.initialization_options))


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
async def did_change_configuration(ls: MercuryLanguageServer, params: types.DidChangeConfigurationParams) -> None:
    raw = mercury_section(params.settings)
    workspace = ls.client_capabilities.workspace
    if raw is None and workspace and workspace.configuration:
        answer = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="mercury")])
        )
        raw = answer[0] if answer else None
    ls.apply_settings(raw)


@server.feature(types.SHUTDOWN)
def shutdown(ls: MercuryLanguageServer, params: None) -> None:
    # Synchronous, so that pygls marks the shutdown before it reads an `exit` that follows at once.
    asyncio.ensure_future(ls.engine.close())


# Documents -----------------------------------------------------------------------------------

@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: MercuryLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    document = params.text_document
    ls.completer.open(document.uri, document.language_id, document.text)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: MercuryLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    edits = []
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            span = change.range
            edits.append((change.text, (span.start.line, span.start.character),
                          (span.end.line, span.end.character)))
        else:
            edits.append((change.text, None, None))
    ls.completer.change(params.text_document.uri, edits)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: MercuryLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.completer.close(params.text_document.uri)


# Completion ----------------------------------------------------------------------------------

@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(
    ls: MercuryLanguageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    position = params.position
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    trigger = "automatic" if automatic else "invoked"
    found = await ls.completer.suggest(params.text_document.uri, position.line, position.character, trigger)
    # An insertion at the cursor: VS Code can then accept it word by word or line by line.
    here = types.Range(start=position, end=position)
    return types.InlineCompletionList(
        items=[types.InlineCompletionItem(insert_text=text, range=here) for text in found.texts]
    )


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
async def completion(ls: MercuryLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    position = params.position
    uri = params.text_document.uri
    found = await ls.completer.suggest(uri, position.line, position.character, _completion_trigger(params.context))
    document = ls.completer.documents.get(uri)
    if not found.texts or document is None:
        return types.CompletionList(is_incomplete=True, items=[])
    # Replace from the start of the word being typed, so the client's filter keeps the item.
    cursor = document.offset_at(position.line, position.character, ls.completer.encoding)
    word = document.word_before(cursor)
    start = document.position_at(cursor - len(word), ls.completer.encoding)
    span = types.Range(start=types.Position(*start), end=position)
    items = [
        types.CompletionItem(
            label=(word + text).split("\n", 1)[0].strip()[:60] or text.strip()[:60],
            kind=types.CompletionItemKind.Text,
            detail="Mercury",
            filter_text=word + text,
            text_edit=types.TextEdit(range=span, new_text=word + text),
            insert_text_format=types.InsertTextFormat.PlainText,
            sort_text=f"0{rank}",
            preselect=rank == 0,
        )
        for rank, text in enumerate(found.texts)
    ]
    return types.CompletionList(is_incomplete=True, items=items)


def _completion_trigger(context: types.CompletionContext | None) -> TriggerKind:
    """Typing re-asks for completion items (a trigger character, an incomplete list); the rest is asked for."""
    kind = context.trigger_kind if context else types.CompletionTriggerKind.Invoked
    return "invoked" if kind == types.CompletionTriggerKind.Invoked else "automatic"


# Next edit ---------------------------------------------------------------------------------

@server.feature(COPILOT_INLINE_EDIT)
async def copilot_inline_edit(ls: MercuryLanguageServer, params: Any) -> dict[str, Any]:
    """Copilot's next-edit request: params like inlineCompletion's, the answer `{edits: [{range, text,
    textDocument}]}` (several edits would be alternatives; the engine proposes one)."""
    try:
        document = params.textDocument
        uri, version = document.uri, getattr(document, "version", None)
        line, character = params.position.line, params.position.character
    except AttributeError as error:
        raise JsonRpcInvalidParams("copilotInlineEdit needs textDocument.uri and position.") from error
    found = await next_edit(ls.completer, uri, line, character)
    if found is None:
        return {"edits": []}
    span = {"start": {"line": found.start[0], "character": found.start[1]},
            "end": {"line": found.end[0], "character": found.end[1]}}
    return {"edits": [{"range": span, "text": found.text, "textDocument": {"uri": uri, "version": version}}]}


# Fill the selection --------------------------------------------------------------------------

def _supports_resolving_edits(ls: MercuryLanguageServer) -> bool:
    document = ls.client_capabilities.text_document
    action = document.code_action if document else None
    support = action.resolve_support if action else None
    return bool(support and "edit" in support.properties)


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite], resolve_provider=True),
)
def code_action(ls: MercuryLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    span = params.range
    uri = params.text_document.uri
    if span.start == span.end or uri not in ls.completer.documents:
        return []
    arguments = [uri, CONVERTER.unstructure(span)]
    action = types.CodeAction(title=FILL_TITLE, kind=types.CodeActionKind.RefactorRewrite)
    if _supports_resolving_edits(ls):
        action.data = {"uri": uri, "range": arguments[1]}
    else:
        action.command = types.Command(title=FILL_TITLE, command=FILL_COMMAND, arguments=arguments)
    return [action]


async def _fill_edit(ls: MercuryLanguageServer, uri: str, span: types.Range) -> types.WorkspaceEdit:
    try:
        filled = await ls.completer.fill(
            uri, (span.start.line, span.start.character), (span.end.line, span.end.character)
        )
    except EngineError as error:
        raise JsonRpcException(str(error), code=REQUEST_FAILED) from error
    if filled is None:
        raise JsonRpcInvalidParams(f"{uri} is not open.")
    text, start, end = filled
    replaced = types.Range(start=types.Position(*start), end=types.Position(*end))
    return types.WorkspaceEdit(changes={uri: [types.TextEdit(range=replaced, new_text=text)]})


@server.feature(types.CODE_ACTION_RESOLVE)
async def code_action_resolve(ls: MercuryLanguageServer, action: types.CodeAction) -> types.CodeAction:
    data = action.data if isinstance(action.data, dict) else {}
    try:
        uri = data["uri"]
        span = CONVERTER.structure(data["range"], types.Range)
    except Exception as error:
        raise JsonRpcInvalidParams("This code action carries no selection to fill.") from error
    action.edit = await _fill_edit(ls, uri, span)
    return action


@server.command(FILL_COMMAND)
async def fill_command(ls: MercuryLanguageServer, uri: str, span: types.Range) -> types.WorkspaceEdit:
    edit = await _fill_edit(ls, uri, span)
    applied = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=FILL_TITLE))
    if not applied.applied:
        log.warning("the client did not apply the fill: %s", applied.failure_reason)
    return edit
