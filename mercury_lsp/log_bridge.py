"""Log records sent to the client as `window/logMessage`, each with the MessageType of its level.

A client shows a server's stderr with one level for every line: VS Code's language client marks all
of it `[error]`, so a pygls WARNING read as an error. As `window/logMessage` (allowed at any time,
even before `initialize`) each record keeps its level in the client's log.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

from lsprotocol import types
from pygls.protocol import JsonRPCProtocol

_MESSAGE_TYPES = (  # highest level first: a record takes the first type whose level it reaches
    (logging.ERROR, types.MessageType.Error),
    (logging.WARNING, types.MessageType.Warning),
    (logging.INFO, types.MessageType.Info),
)


def message_type(levelno: int) -> types.MessageType:
    """The LSP MessageType for a logging level (DEBUG and below: Debug, new in LSP 3.18)."""
    for level, kind in _MESSAGE_TYPES:
        if levelno >= level:
            return kind
    return types.MessageType.Debug


class ClientLogHandler(logging.Handler):
    """Sends records to the client once it is connected; before that, and for records logged while
    a message is being sent (pygls logs its own sends), they go to `fallback` (stderr)."""

    def __init__(self, protocol: JsonRPCProtocol, fallback: logging.Handler) -> None:
        super().__init__()
        self._protocol = protocol
        self._fallback = fallback
        self._sending = threading.local()
        self._loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._protocol.writer is None or getattr(self._sending, "active", False):
            self._fallback.handle(record)
            return
        try:
            params = types.LogMessageParams(type=message_type(record.levelno), message=self.format(record))
        except Exception:  # a record whose arguments do not format; logging's own report of it
            self.handleError(record)
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # another thread: the transport belongs to the event loop's thread
            if self._loop is None or self._loop.is_closed():
                self._fallback.handle(record)
                return
            self._loop.call_soon_threadsafe(self._send, params, record)
            return
        self._send(params, record)

    def _send(self, params: types.LogMessageParams, record: logging.LogRecord) -> None:
        self._sending.active = True
        try:
            self._protocol.notify(types.WINDOW_LOG_MESSAGE, params)
        except Exception:  # the client is gone; stderr is all that is left
            self._fallback.handle(record)
        finally:
            self._sending.active = False


def install(protocol: JsonRPCProtocol, level: str) -> None:
    """Route the root logger's records to the client over `protocol`, stderr until it connects."""
    fallback = logging.StreamHandler(sys.stderr)
    fallback.setFormatter(logging.Formatter("mercury-lsp %(levelname)s %(name)s: %(message)s"))
    handler = ClientLogHandler(protocol, fallback)
    # The client adds the time and the level itself.
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
