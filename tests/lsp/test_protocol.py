"""The real server process over stdio, without an engine: capabilities, errors, and what it refuses."""

from __future__ import annotations

import subprocess

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from session import SERVER, session

DEAD_ENGINE = {"engineUrl": "http://127.0.0.1:9"}  # the discard port: nothing listens there
URI = "file:///work/project/a.py"


async def test_initialize_advertises_the_features() -> None:
    async with session(DEAD_ENGINE) as live:
        caps = live.init.capabilities
        assert caps.inline_completion_provider is not None
        assert caps.completion_provider is not None
        assert caps.code_action_provider.resolve_provider is True
        assert "mercury.fill" in caps.execute_command_provider.commands
        assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
        assert caps.position_encoding == "utf-16"


@pytest.mark.parametrize("offered", [["utf-8", "utf-16"], ["utf-32"]])
async def test_position_encoding_follows_the_client(offered: list[str]) -> None:
    async with session(DEAD_ENGINE, encodings=offered) as live:
        assert live.init.capabilities.position_encoding == offered[0]


async def test_requests_before_initialize_get_an_error_and_the_server_goes_on() -> None:
    async with session(DEAD_ENGINE, initialize=False) as live:
        with pytest.raises(JsonRpcException) as refused:
            await live.raw_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0},
                 "context": {"triggerKind": 1}},
            )
        assert refused.value.code == -32002
        result = await live.client.initialize_session(
            types.InitializeParams(capabilities=types.ClientCapabilities())
        )
        assert result.capabilities.inline_completion_provider is not None


async def test_malformed_params_get_invalid_params() -> None:
    async with session(DEAD_ENGINE) as live:
        for params in ({"textDocument": 5}, {"position": {"line": "x"}}, None, [1, 2]):
            with pytest.raises(JsonRpcException) as refused:
                await live.raw_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
            assert refused.value.code == -32602
        with pytest.raises(JsonRpcException) as unknown:
            await live.raw_request("mercury/noSuchMethod", {})
        assert unknown.value.code == -32601
        answer = await live.inline("file:///nowhere.py", 0, 0)
        assert list(answer.items) == []


async def test_unknown_documents_and_far_positions_answer_nothing() -> None:
    async with session(DEAD_ENGINE) as live:
        live.open(URI, "x = 1\n")
        assert list((await live.inline(URI, 10_000, 10_000)).items) == []
        assert list((await live.inline("file:///not/open.py", 0, 0)).items) == []
        completion = await live.client.text_document_completion_async(types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri="file:///not/open.py"),
            position=types.Position(line=3, character=4),
        ))
        assert list(completion.items) == []
        actions = await live.client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri="file:///not/open.py"),
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=3)),
            context=types.CodeActionContext(diagnostics=[]),
        ))
        assert list(actions) == []


async def test_an_unreachable_engine_is_reported_once() -> None:
    async with session(DEAD_ENGINE) as live:
        live.open(URI, "def f(x):\n    return \n")
        error = await live.wait_for_state("error", timeout=20)
        assert "cannot be reached" in error["message"]
        for _ in range(5):
            assert list((await live.inline(URI, 1, 11)).items) == []
        assert [m.message for m in live.client.messages] == [f"Mercury: {error['message']}"]


async def test_bad_settings_are_named_and_the_rest_applies() -> None:
    async with session({**DEAD_ENGINE, "maxTokens": "many", "enabledLanguages": ["rust"]}) as live:
        live.open(URI, "x = 1\n")  # python is not enabled: the engine is not even started
        assert list((await live.inline(URI, 0, 5)).items) == []
        assert [m.message for m in live.client.messages] == [
            "Mercury: mercury.maxTokens must be an integer of at least 1, got 'many'."
        ]
        assert all(status["state"] != "error" for status in live.statuses)


async def test_disabled_server_reports_disabled_and_answers_nothing() -> None:
    async with session({**DEAD_ENGINE, "enabled": True}) as live:
        live.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"mercury": {"enabled": False}})
        )
        await live.wait_for_state("disabled", timeout=10)
        live.open(URI, "x = 1\n")
        assert list((await live.inline(URI, 0, 5)).items) == []


def _frame(message: str) -> bytes:
    body = message.encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([], 0),  # the client closed stdin: a clean end
        (['{"jsonrpc":"2.0","method":"exit"}'], 1),  # exit without shutdown: 1, as the LSP says
        (['{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{}}}',
          '{"jsonrpc":"2.0","id":1,"method":"shutdown"}', '{"jsonrpc":"2.0","method":"exit"}'], 0),
    ],
)
def test_stdio_ends_with_the_exit_code_lsp_asks_for(messages: list[str], code: int, tmp_path) -> None:
    data = b"".join(_frame(message) for message in messages)
    piped = subprocess.run(SERVER, input=data, capture_output=True, timeout=30)
    assert piped.returncode == code, piped.stderr.decode()
    from_file = tmp_path / "input"
    from_file.write_bytes(data)
    with open(from_file, "rb") as stdin:  # not a pipe: pygls' own reader serves it
        done = subprocess.run(SERVER, stdin=stdin, capture_output=True, timeout=30)
    assert done.returncode in (0, code) and b"Traceback" not in done.stderr
