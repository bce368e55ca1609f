"""The stdio transport, with stdin read by the event loop itself.

pygls reads stdin on its thread pool, one hand-off per header line and body; on a busy machine each
hand-off costs a fraction of a millisecond of every request. Reading the pipe from the event loop
removes them. Where stdin is not a pipe or a socket (a file, /dev/null, a terminal), pygls' own
reader is used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import threading

from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer

log = logging.getLogger(__name__)


async def _serve(server: LanguageServer) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin.buffer)
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    await run_async(
        stop_event=threading.Event(), reader=stdin, protocol=server.protocol, logger=log,
        error_handler=server.report_server_error,
    )


def serve_stdio(server: LanguageServer) -> None:
    """Serve LSP over stdin/stdout until the client sends exit or closes stdin."""
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        server.start_io()
        return
    try:
        asyncio.run(_serve(server))
    except BrokenPipeError:
        log.error("the client closed the connection")
    finally:
        server.shutdown()
