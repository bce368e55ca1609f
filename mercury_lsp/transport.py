"""The LSP transport: bytes from stdin (or a TCP connection) cut into frames by our own reader, on the event loop.

pygls reads headers with asyncio's line reader, whose 64 KiB line limit ends the session on one long header line
(or on a body sent with too small a Content-Length, whose rest reads as a header line), and it knows the header
name only in one spelling. `FrameReader` takes any bytes: header names in any case, a bounded header section, a
bounded body; a frame it cannot read is reported (the protocol answers it with a JSON-RPC parse error) and the reader
finds the next frame. A pipe or socket is read by the event loop itself; anything else (a file, a terminal) by one
thread of its own, never pygls' pool, which the server's handlers use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer

from mercury_lsp.protocol import MercuryProtocol

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 8 * 1024  # a real header section is under 100 bytes
MAX_BODY_BYTES = 64 * 1024 * 1024  # a didOpen of a very large file
READ_BYTES = 64 * 1024
_CONTENT_LENGTH = re.compile(rb"content-length:", re.IGNORECASE)
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


_AGAIN = object()


@dataclass(frozen=True)
class Frame:
    body: bytes


@dataclass(frozen=True)
class Malformed:
    """Bytes that were not a frame; `reason` is one sentence for the client."""

    reason: str


class FrameReader:
    """Cuts a byte stream into LSP frames (`Content-Length: N`, other headers, a blank line, N bytes of body).

    `feed` never raises. A frame whose header section is readable but refused (a body over the limit, another
    charset) is reported and its body skipped without being held in memory. A header section that cannot be read
    is reported once, and reading starts over at whichever comes first: the next `Content-Length:` (the rest of a
    body sent with too small a length runs straight into the next frame's header) or the end of the bad section.
    """

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._body_length: int | None = None  # set while a body is being read
        self._skip = 0  # bytes of a refused body still to discard
        self._lost = False  # skipping junk: report it once

    def feed(self, data: bytes) -> list[Frame | Malformed]:
        self._buffer += data
        events: list[Frame | Malformed] = []
        while (event := self._next()) is not None:
            if event is not _AGAIN:
                events.append(event)
        return events

    def _next(self) -> Frame | Malformed | object | None:
        """The next frame or report; None when more bytes are needed; _AGAIN after a silent step."""
        if self._skip:
            dropped = min(self._skip, len(self._buffer))
            del self._buffer[:dropped]
            self._skip -= dropped
            return _AGAIN if dropped and not self._skip else None
        if self._body_length is not None:
            if len(self._buffer) < self._body_length:
                return None
            body = bytes(self._buffer[: self._body_length])
            del self._buffer[: self._body_length]
            self._body_length = None
            return Frame(body)
        end = self._buffer.find(b"\r\n\r\n", 0, self.max_header_bytes + 4)
        if end < 0:
            if len(self._buffer) <= self.max_header_bytes:
                return None
            return self._resync(f"The header section is longer than {self.max_header_bytes} bytes.")
        length, problem = self._read_section(bytes(self._buffer[:end]))
        if length is None:
            return self._resync(problem)
        del self._buffer[: end + 4]
        self._lost = False
        if problem is None and length > self.max_body_bytes:
            problem = f"The message body of {length} bytes is larger than {self.max_body_bytes} bytes."
        if problem is not None:
            self._skip = length
            return Malformed(problem)
        self._body_length = length
        return _AGAIN

    def _read_section(self, section: bytes) -> tuple[int | None, str | None]:
        """The body length a header section gives (None when it gives none it can be trusted for) and what is
        wrong with the section, if anything."""
        length: int | None = None
        charset_problem = None
        for line in section.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not _HEADER_NAME.fullmatch(name):
                return None, "A header line is not `Name: value`."
            name, value = name.lower(), value.strip()
            if name == b"content-length":
                if not value.isdigit() or len(value) > 12 or (length is not None and int(value) != length):
                    return None, "The Content-Length header is not one whole number."
                length = int(value)
            elif name == b"content-type":
                charset = value.lower().partition(b"charset=")[2].split(b";")[0].strip(b" \"")
                if charset and charset not in (b"utf-8", b"utf8"):
                    charset_problem = "The message is not in UTF-8 (Content-Type names another charset)."
        if length is None:
            return None, "The header section has no Content-Length."
        return length, charset_problem

    def _resync(self, problem: str | None) -> Malformed | object | None:
        """Drop the bytes before the next place a header section may begin (or all but a tail that could begin
        one); report the first resync of a run of junk."""
        starts = []
        found = _CONTENT_LENGTH.search(self._buffer, 1)
        if found is not None:
            starts.append(found.start())
        blank = self._buffer.find(b"\r\n\r\n")
        if blank >= 0:
            starts.append(blank + 4)
        if starts:
            del self._buffer[: min(starts)]
        else:
            keep = len(b"content-length:") - 1
            del self._buffer[: max(len(self._buffer) - keep, 0)]
        first, self._lost = not self._lost, True
        if first:
            return Malformed(problem or "The header section cannot be read.")
        return _AGAIN if starts else None


async def _pipe_chunks(fd: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_BYTES)
    pipe = os.fdopen(fd, "rb", buffering=0, closefd=False)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    while chunk := await reader.read(READ_BYTES):
        yield chunk


async def _file_chunks(fd: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mercury-stdin") as reader:
        while chunk := await loop.run_in_executor(reader, os.read, fd, READ_BYTES):
            yield chunk


async def read_messages(chunks: AsyncIterator[bytes], protocol: MercuryProtocol) -> None:
    """Hand every frame to the protocol until the stream ends (or the client sends `exit`)."""
    frames = FrameReader()
    async for chunk in chunks:
        for event in frames.feed(chunk):
            if isinstance(event, Frame):
                protocol.receive_frame(event.body)
            else:
                log.warning("unreadable frame: %s", event.reason)
                protocol.reject_frame(event.reason)


def serve_stdio(server: LanguageServer) -> None:
    """Serve LSP over stdin/stdout until the client sends exit or closes stdin."""
    fd = sys.stdin.fileno()
    mode = os.fstat(fd).st_mode
    chunks = _pipe_chunks if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else _file_chunks
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    try:
        asyncio.run(read_messages(chunks(fd), server.protocol))
    except BrokenPipeError:
        log.error("the client closed the connection")
    finally:
        server.shutdown()


class _TcpWriter:
    """pygls' writer interface over an asyncio stream."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


def serve_tcp(server: LanguageServer, host: str, port: int) -> None:
    """Serve LSP to one TCP client at a time (for debugging), with the same frame reader as stdio."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.protocol.set_writer(_TcpWriter(writer))

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await reader.read(READ_BYTES):
                yield chunk

        await read_messages(chunks(), server.protocol)

    async def main() -> None:
        async with await asyncio.start_server(connection, host, port) as listening:
            log.info("serving LSP on %s:%s", host, port)
            await listening.serve_forever()

    try:
        asyncio.run(main())
    finally:
        server.shutdown()
