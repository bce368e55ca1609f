"""The real server process over stdio, without an engine: capabilities, errors, and what it refuses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

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


def _answers(stdout: bytes) -> list[dict]:
    """The server's messages, read frame by frame (answers and errors; log notifications dropped)."""
    messages = []
    while stdout:
        head, _, rest = stdout.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        messages.append(json.loads(rest[:length]))
        stdout = rest[length:]
    return [m for m in messages if "id" in m]


INITIALIZE = '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{}}}'
SHUTDOWN = '{"jsonrpc":"2.0","id":"last","method":"shutdown"}'
EXIT = '{"jsonrpc":"2.0","method":"exit"}'


def _serve(data: bytes, tmp_path, through: str = "pipe") -> tuple[int, list[dict], bytes]:
    if through == "pipe":
        done = subprocess.run(SERVER, input=data, capture_output=True, timeout=60)
    else:
        path = tmp_path / "input"
        path.write_bytes(data)
        with open(path, "rb") as stdin:
            done = subprocess.run(SERVER, stdin=stdin, capture_output=True, timeout=60)
    return done.returncode, _answers(done.stdout), done.stderr


MALFORMED = [
    # (bytes, the error the client gets: (id, code))
    (b"Content-Length: 9\r\n\r\n{not json", (None, -32700)),
    (_frame("[1, 2]"), (None, -32600)),
    (_frame('{"id": 5, "method": "shutdown"}'), (5, -32600)),  # no "jsonrpc": "2.0"
    (_frame('{"jsonrpc": "2.0", "id": true, "method": "shutdown"}'), (None, -32600)),
    (_frame('{"jsonrpc": "2.0", "id": 6, "method": 7}'), (6, -32600)),
    (_frame('{"jsonrpc": "2.0", "method": "x", "params": ' + "[" * 50_000 + "]" * 50_000 + "}"), (None, -32700)),
    (_frame('{"jsonrpc": "2.0", "id": 1e999, "method": "x"}'), (None, -32600)),
    (b"Content-Length: 4\r\n\r\n\xff\xfe\xfd\xfc", (None, -32700)),
    (b"X-Header: " + b"x" * 100_000 + b"\r\n\r\n", (None, -32700)),  # one header line longer than 64 KiB
    (b"Content-Type: text/plain; charset=latin-1\r\nContent-Length: 2\r\n\r\n{}", (None, -32700)),
    (b"Content-Length: 99999999999\r\n\r\n", (None, -32700)),
]


@pytest.mark.parametrize("through", ["pipe", "file"])
def test_every_malformed_frame_is_answered_and_the_server_keeps_serving(through, tmp_path) -> None:
    data = _frame(INITIALIZE)
    for raw, _ in MALFORMED[:-1]:  # the last one swallows the rest of the stream as its body
        data += raw
    data += _frame(SHUTDOWN) + _frame(EXIT)
    code, answers, stderr = _serve(data, tmp_path, through)
    assert code == 0, stderr.decode()[-2000:]
    errors = [(a.get("id"), a["error"]["code"]) for a in answers if "error" in a]
    assert errors == [expected for _, expected in MALFORMED[:-1]]
    assert answers[0]["id"] == 0 and "capabilities" in answers[0]["result"]
    assert answers[-1] == {"jsonrpc": "2.0", "id": "last", "result": None}
    assert b"Traceback" not in stderr


def test_a_body_longer_than_its_content_length_costs_that_message_not_the_session(tmp_path) -> None:
    """The cut body is not JSON (one error); its rest reads as a header section (another); the reader finds the
    next frame right after it."""
    short = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "shutdown", "params": None, "pad": "x" * 70_000})
    data = _frame(INITIALIZE) + b"Content-Length: 10\r\n\r\n" + short.encode() + _frame(SHUTDOWN) + _frame(EXIT)
    code, answers, stderr = _serve(data, tmp_path)
    assert code == 0
    assert [(a.get("id"), a.get("error", {}).get("code")) for a in answers] == [
        (0, None), (None, -32700), (None, -32700), ("last", None)]


def test_header_names_in_any_case_and_extra_headers(tmp_path) -> None:
    body = INITIALIZE.encode()
    data = (b"content-length: %d\r\nCONTENT-TYPE: application/vscode-jsonrpc; charset=utf-8\r\nX-Other: 1\r\n\r\n"
            % len(body) + body + b"CoNtEnT-LeNgTh: %d\r\n\r\n" % len(SHUTDOWN) + SHUTDOWN.encode() + _frame(EXIT))
    code, answers, _ = _serve(data, tmp_path)
    assert code == 0
    assert [a["id"] for a in answers] == [0, "last"]


def test_requests_after_shutdown_are_invalid_requests(tmp_path) -> None:
    after = [
        '{"jsonrpc":"2.0","id":2,"method":"textDocument/inlineCompletion","params":{"textDocument":{"uri":"file:///a"},'
        '"position":{"line":0,"character":0},"context":{"triggerKind":1}}}',
        '{"jsonrpc":"2.0","id":3,"method":"textDocument/hover","params":{}}',
        '{"jsonrpc":"2.0","id":4,"method":"shutdown"}',
        '{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{}}',
    ]
    data = _frame(INITIALIZE) + _frame(SHUTDOWN) + b"".join(_frame(m) for m in after) + _frame(EXIT)
    code, answers, _ = _serve(data, tmp_path)
    assert code == 0
    assert [(a["id"], a.get("error", {}).get("code")) for a in answers] == [
        (0, None), ("last", None), (2, -32600), (3, -32600), (4, -32600)]


def test_tcp_serves_with_the_same_frame_reader(tmp_path) -> None:
    """`serve_tcp` (for --tcp): the long header line that ended pygls' TCP reader is one error here too."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = ("from mercury_lsp.server import server; from mercury_lsp.transport import serve_tcp; "
            f"serve_tcp(server, '127.0.0.1', {port})")
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                connection = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.05)
        data = (_frame(INITIALIZE) + b"x-long: " + b"a" * 100_000 + b"\r\n\r\n" + _frame(SHUTDOWN) + _frame(EXIT))
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        connection.close()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    answers = _answers(received)
    assert [(a["id"], a.get("error", {}).get("code")) for a in answers] == [(0, None), (None, -32700), ("last", None)]
