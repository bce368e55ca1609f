"""Property-based robustness: random edits, positions, URIs and params never stop the server; a long session keeps
no finished handler behind."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pygls.exceptions import JsonRpcException
from session import Session, session

DEAD_ENGINE = {"engineUrl": "http://127.0.0.1:9", "debounceMs": 0}
URIS = ["file:///work/project/a.py", "file:///work/project/b.rs", "file:///never/opened.py", "untitled:Untitled-1"]
# invalid params, unknown method, not initialized, request failed (the engine is not there)
EXPECTED_ERRORS = {-32602, -32601, -32002, -32803}
METHODS = [
    "textDocument/inlineCompletion", "textDocument/completion", "textDocument/codeAction",
    "codeAction/resolve", "workspace/executeCommand", "textDocument/didChange", "textDocument/didOpen",
]

texts = st.text(alphabet=st.sampled_from(list("ab_ (){}:=\n\r\t😀漢é")), max_size=30)
numbers = st.one_of(st.integers(0, 8), st.integers(0, 2**31 - 1))
positions = st.fixed_dictionaries({"line": numbers, "character": numbers})
ranges = st.fixed_dictionaries({"start": positions, "end": positions})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["textDocument", "position", "range", "uri", "context", "command", "arguments", "line", "data"]
    ), inner, max_size=3),
    max_leaves=8,
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(URIS), texts),
        st.tuples(st.just("change"), st.sampled_from(URIS), ranges, texts),
        st.tuples(st.just("close"), st.sampled_from(URIS)),
        st.tuples(st.just("inline"), st.sampled_from(URIS), positions, st.sampled_from([1, 2])),
        st.tuples(st.just("completion"), st.sampled_from(URIS), positions),
        st.tuples(st.just("action"), st.sampled_from(URIS), ranges),
        st.tuples(st.just("fill"), st.sampled_from(URIS), ranges),
        st.tuples(st.just("raw"), st.sampled_from(METHODS), json_values),
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Session, Callable[[Any], Any]]]:
    """One server for all examples, driven from a loop in its own thread (hypothesis tests are sync)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(120)

    manager = session(DEAD_ENGINE)
    box = run(manager.__aenter__())
    try:
        yield box, run
    finally:
        run(manager.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _apply(live: Session, operation: tuple) -> None:
    kind, uri, *rest = operation
    if kind == "open":
        await live.raw_notify("textDocument/didOpen", {
            "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": rest[0]}})
    elif kind == "change":
        await live.raw_notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": rest[0], "text": rest[1]}]})
    elif kind == "close":
        await live.raw_notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    else:
        method, params = _request(kind, uri, rest)
        try:
            await live.raw_request(method, params)
        except JsonRpcException as error:
            # An error answer is an answer, but an internal error would be a crash in a handler.
            assert error.code in EXPECTED_ERRORS, f"{method} {params!r}: {error.code} {error}"


def _request(kind: str, uri: str, rest: list) -> tuple[str, Any]:
    document = {"uri": uri}
    if kind == "inline":
        return "textDocument/inlineCompletion", {
            "textDocument": document, "position": rest[0], "context": {"triggerKind": rest[1]}}
    if kind == "completion":
        return "textDocument/completion", {"textDocument": document, "position": rest[0]}
    if kind == "action":
        return "textDocument/codeAction", {
            "textDocument": document, "range": rest[0], "context": {"diagnostics": []}}
    if kind == "fill":
        return "workspace/executeCommand", {"command": "mercury.fill", "arguments": [uri, rest[0]]}
    return uri, rest[0]  # raw: (method, params)


@settings(max_examples=25, deadline=None)
@given(script=operations)
def test_the_server_answers_everything_and_keeps_serving(live, script: list[tuple]) -> None:
    box, run = live

    async def play() -> None:
        for operation in script:
            await _apply(box, operation)
        # Still serving: a well-formed request on an open document gets a well-formed answer.
        await _apply(box, ("open", "file:///work/project/check.py", "x = 1\n"))
        answer = await box.inline("file:///work/project/check.py", 0, 5)
        assert list(answer.items) == []

    run(play())
    assert box.client._server.returncode is None


class _Sink:
    """pygls' writer interface, keeping what the server sends."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> None:
        pass


async def test_a_long_session_keeps_no_finished_handlers() -> None:
    """Every notification used to leave its finished future in pygls' table (22,002 after 22,000 of them)."""
    from mercury_lsp.server import server  # the real server and handlers, driven in this process

    protocol = server.protocol
    protocol.set_writer(_Sink())

    def send(message: dict[str, Any]) -> None:
        protocol.receive_frame(json.dumps({"jsonrpc": "2.0", **message}).encode())

    send({"id": 0, "method": "initialize", "params": {
        "capabilities": {}, "initializationOptions": {"mercury": {**DEAD_ENGINE, "enabled": False}}}})
    send({"method": "initialized", "params": {}})
    uri = "file:///work/project/long.py"
    send({"method": "textDocument/didOpen", "params": {
        "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}}})
    here = {"line": 0, "character": 0}
    for version in range(2, 2002):
        send({"method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": here, "end": here}, "text": "a"}]}})
        if version % 10 == 0:
            send({"method": "workspace/didChangeConfiguration", "params": {"settings": {"mercury": {"enabled": False}}}})
            await asyncio.sleep(0)  # let the async handlers finish
    send({"id": 1, "method": "textDocument/completion", "params": {"textDocument": {"uri": uri}, "position": here}})
    for _ in range(50):
        await asyncio.sleep(0.01)
    assert protocol._request_futures == {}
    assert b'"id": 1' in protocol.writer.data, "the request after them was answered"
