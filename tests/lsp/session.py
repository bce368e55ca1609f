"""Start the real `mercury-lsp` process under a pytest-lsp client and talk to it over stdio."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

SERVER = [sys.executable, "-m", "mercury_lsp.cli"]


def capabilities(encodings: list[str] | None = None) -> types.ClientCapabilities:
    """A client that supports inline completion (absent from pytest-lsp's presets), progress and resolve."""
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=encodings),
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(apply_edit=True, configuration=True),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            completion=types.CompletionClientCapabilities(),
            code_action=types.CodeActionClientCapabilities(
                resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]),
            ),
            synchronization=types.TextDocumentSyncClientCapabilities(),
        ),
    )


class Session:
    """A started server with the notifications it sent so far."""

    def __init__(self, client: LanguageClient, init: types.InitializeResult) -> None:
        self.client = client
        self.init = init
        self.statuses: list[dict[str, Any]] = []
        self.applied_edits: list[types.WorkspaceEdit] = []
        self._status_seen = asyncio.Event()

    async def wait_for_state(self, state: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first mercury/status with this engine state (already received or coming)."""
        async def seen() -> dict[str, Any]:
            while True:
                for status in self.statuses:
                    if status["state"] == state:
                        return status
                self._status_seen.clear()
                await self._status_seen.wait()

        return await asyncio.wait_for(seen(), timeout)

    async def status_since(self, seen: int, timeout: float = 10.0) -> dict[str, Any]:
        """The first mercury/status after the first `seen` ones (it follows the answer it describes)."""
        async def arrived() -> dict[str, Any]:
            while len(self.statuses) <= seen:
                self._status_seen.clear()
                await self._status_seen.wait()
            return self.statuses[seen]

        return await asyncio.wait_for(arrived(), timeout)

    def open(self, uri: str, text: str, language_id: str = "python") -> None:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
            )
        )

    async def raw_request(self, method: str, params: Any) -> Any:
        """Send any params as they are, typed or not, initialized or not; return the raw result."""
        protocol = self.client.protocol
        request_id = uuid.uuid4().hex
        answer: Future[Any] = Future()
        protocol._request_futures[request_id] = answer
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        protocol._send_data(message)
        return await asyncio.wait_for(asyncio.wrap_future(answer), 30)

    async def raw_notify(self, method: str, params: Any) -> None:
        """Send a notification with any params; yield once so it leaves before what follows."""
        self.client.protocol._send_data({"jsonrpc": "2.0", "method": method, "params": params})
        await asyncio.sleep(0)

    async def inline_with_status(self, uri: str, line: int, character: int,
                                 automatic: bool = False) -> tuple[types.InlineCompletionList, dict[str, Any]]:
        """An inline request and the mercury/status that follows its answer."""
        seen = len(self.statuses)
        answer = await self.inline(uri, line, character, automatic)
        return answer, await self.status_since(seen)

    def insert(self, uri: str, version: int, line: int, character: int, text: str) -> None:
        here = types.Position(line=line, character=character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(
                    range=types.Range(start=here, end=here), text=text)],
            )
        )

    async def inline(self, uri: str, line: int, character: int, automatic: bool = False) -> types.InlineCompletionList:
        kind = types.InlineCompletionTriggerKind.Automatic if automatic else types.InlineCompletionTriggerKind.Invoked
        return await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(trigger_kind=kind),
            )
        )


@contextlib.asynccontextmanager
async def session(
    settings: dict[str, Any] | None = None,
    encodings: list[str] | None = None,
    env: dict[str, str] | None = None,
    initialize: bool = True,
) -> AsyncIterator[Session]:
    """Start `mercury-lsp`, initialize it with `settings` under `mercury`, and shut it down after."""
    client = make_test_lsp_client()
    await client.start_io(*SERVER, env=env)
    box = Session(client, types.InitializeResult(capabilities=types.ServerCapabilities()))

    @client.feature("mercury/status")
    def on_status(ls: LanguageClient, params: Any) -> None:
        box.statuses.append(params if isinstance(params, dict) else params._asdict())
        box._status_seen.set()

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply_edit(ls: LanguageClient, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        box.applied_edits.append(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    try:
        if initialize:
            box.init = await client.initialize_session(
                types.InitializeParams(
                    capabilities=capabilities(encodings),
                    initialization_options={"mercury": settings or {}},
                    root_uri="file:///work/project",
                )
            )
        yield box
    finally:
        await _close(client)


async def _close(client: LanguageClient) -> None:
    """Shut the server down politely; a server that does not exit in time is killed."""
    process = client._server
    try:
        if client.capabilities is not None and process is not None and process.returncode is None:
            await asyncio.wait_for(client.shutdown_session(), 10)
        elif process is not None and process.returncode is None:
            client.exit(None)
        await asyncio.wait_for(client.stop(), 10)
    except (asyncio.TimeoutError, RuntimeError):
        if process is not None and process.returncode is None:
            process.kill()
        raise
