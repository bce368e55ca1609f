"""Log records reach the client as window/logMessage with their level; stderr only before it connects."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from lsprotocol import types

from mercury_lsp.log_bridge import ClientLogHandler, message_type


class RecordingProtocol:
    """The part of pygls' protocol the handler uses; logs a line of its own on each send, as pygls does."""

    def __init__(self) -> None:
        self.writer: object | None = None
        self.sent: list[tuple[str, types.LogMessageParams]] = []

    def notify(self, method: str, params: types.LogMessageParams) -> None:
        logging.getLogger("pygls.protocol.json_rpc").warning("Sending data: %s", params.message)
        self.sent.append((method, params))


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture()
def bridge() -> Any:
    protocol = RecordingProtocol()
    fallback = ListHandler()
    handler = ClientLogHandler(protocol, fallback)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.DEBUG)
    yield protocol, fallback
    root.handlers, root.level = saved[0], saved[1]


def test_levels_map_to_message_types() -> None:
    assert [message_type(level) for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO,
                                               logging.DEBUG, 5)] == [
        types.MessageType.Error, types.MessageType.Error, types.MessageType.Warning, types.MessageType.Info,
        types.MessageType.Debug, types.MessageType.Debug]


def test_records_go_to_stderr_until_the_client_connects(bridge: Any) -> None:
    protocol, fallback = bridge
    logging.getLogger("early").warning("before")
    assert protocol.sent == []
    assert [r.getMessage() for r in fallback.records] == ["before"]


def test_records_become_log_messages_and_sends_do_not_recurse(bridge: Any) -> None:
    protocol, fallback = bridge
    protocol.writer = object()

    async def log_on_the_loop() -> None:
        logging.getLogger("pygls.protocol").warning('Cancel notification for unknown message id "7"')
        logging.getLogger("mercury_lsp.x").debug("detail")

    asyncio.run(log_on_the_loop())
    assert [(m, p.type, p.message) for m, p in protocol.sent] == [
        (types.WINDOW_LOG_MESSAGE, types.MessageType.Warning, 'pygls.protocol: Cancel notification for unknown message id "7"'),
        (types.WINDOW_LOG_MESSAGE, types.MessageType.Debug, "mercury_lsp.x: detail"),
    ]
    # What pygls logs while sending cannot be sent again: it falls back to stderr instead of looping.
    assert [r.getMessage() for r in fallback.records if r.name == "pygls.protocol.json_rpc"] == [
        'Sending data: pygls.protocol: Cancel notification for unknown message id "7"',
        "Sending data: mercury_lsp.x: detail",
    ]


def test_records_from_other_threads_are_sent_on_the_event_loop(bridge: Any) -> None:
    protocol, _ = bridge
    protocol.writer = object()
    sender_threads: list[int] = []
    notify = protocol.notify
    protocol.notify = lambda method, params: (sender_threads.append(threading.get_ident()), notify(method, params))

    async def main() -> None:
        logging.getLogger("loop").info("first, from the loop")  # the handler learns the loop here
        worker = threading.Thread(target=lambda: logging.getLogger("worker").error("from a thread"))
        worker.start()
        worker.join()
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert [p.message for _, p in protocol.sent] == ["loop: first, from the loop", "worker: from a thread"]
    assert set(sender_threads) == {threading.get_ident()}


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_the_real_server_sends_a_pygls_warning_as_a_warning_log_message() -> None:
    """mercury-lsp over stdio: the cancel of an unknown request is a Warning (2), and stderr stays empty."""
    server = subprocess.Popen([sys.executable, "-m", "mercury_lsp.cli"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    assert server.stdin
    server.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                               "params": {"processId": None, "rootUri": None, "capabilities": {}}}))
    server.stdin.write(_frame({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 4242}}))
    server.stdin.write(_frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
    server.stdin.write(_frame({"jsonrpc": "2.0", "method": "exit"}))
    out, err = server.communicate(timeout=60)
    messages = []
    while out:
        header, _, rest = out.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in header.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        messages.append(json.loads(rest[:length]))
        out = rest[length:]
    logged = [m["params"] for m in messages if m.get("method") == "window/logMessage"]
    assert any(p["type"] == 2 and "4242" in p["message"] for p in logged), logged
    assert b"4242" not in err, err.decode()
