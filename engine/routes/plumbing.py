"""What every route shares: the served configuration, JSON bodies read and checked, requests queued on the batcher
with a deadline and cancelled when their client leaves, streams fed as the canvas settles, and JSON errors.

The model runs on the batcher's own thread; a handler only awaits its ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from mercury_lsp.engine.api.completions import streamable_length
from mercury_lsp.engine.api.validation import RequestError
from mercury_lsp.engine.batcher import (
    Batcher,
    Cancelled,
    EngineFailure,
    NotReady,
    QueueFull,
    Ticket,
)
from mercury_lsp.engine.metrics import EngineMetrics

if TYPE_CHECKING:
    from mercury_lsp.engine.api.infill import InfillRequest
    from mercury_lsp.engine.infill import InfillResult

CLIENT_CLOSED = 499  # nginx's status for a request the client gave up on; only in metrics, no one receives it
CLIENT_GONE = "mercury.client_gone"  # request key: a stream's client left, though its 200 had been sent


@dataclass
class ServeConfig:
    """Everything `mercury-engine serve` was told."""

    model: str  # a folder, a catalogue short name or a hub id `org/name[@revision]`
    host: str = "127.0.0.1"
    port: int = 8765
    device: str = "auto"
    api_key: str | None = field(default=None, repr=False)
    max_batch: int = 16
    max_queue: int = 64
    threads: int = 0  # CPU threads for torch (0 = torch's default)
    body_limit: int = 1024 * 1024
    request_timeout_s: float = 60.0
    idle_exit_minutes: float = 0.0  # 0 = never
    port_file: Path | None = None
    engine_options: dict = field(default_factory=dict)  # EngineSettings fields: cuda_graphs, confidence, ...


@dataclass
class Activity:
    """When a client last made the engine prove itself: it is about to send work, so the engine must not idle out."""

    last_proof: float = field(default_factory=time.monotonic)


BATCHER_KEY = web.AppKey("batcher", Batcher)
METRICS_KEY = web.AppKey("metrics", EngineMetrics)
CONFIG_KEY = web.AppKey("config", ServeConfig)
ACTIVITY_KEY = web.AppKey("activity", Activity)

class ApiError(Exception):
    """An HTTP error answered as JSON {"error": {"message", "type"}}."""

    def __init__(self, status: int, message: str, kind: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.retry_after = status, message, kind, retry_after

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind}}


def error_response(status: int, message: str, kind: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": {"message": message, "type": kind}}, status=status, headers=headers)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error")


# -- reading requests -------------------------------------------------------------------------------------------

def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: web.Request) -> Any:
    raw = await request.read()  # aiohttp enforces the body limit here (413)
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise bad_request("The request body is not UTF-8 text.") from None
    except json.JSONDecodeError as error:
        raise bad_request(f"The request body is not valid JSON ({error.msg} at line {error.lineno} "
                           f"column {error.colno}).") from None
    except RecursionError:
        raise bad_request("The request body is nested too deeply.") from None
    except ValueError as error:  # NaN/Infinity, or an integer literal longer than Python converts
        raise bad_request(f"The request body is not valid JSON ({str(error).split(';')[0]}).") from None


# -- the batcher ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def admitted(batcher: Batcher) -> Iterator[None]:
    """The batcher's refusals as HTTP answers: 503 while it cannot take work (retry soon while it loads), 429 when
    its queue is full."""
    try:
        yield
    except NotReady as error:
        retry = 2 if batcher.state in ("loading", "warming") else None
        raise ApiError(503, str(error), "engine_unavailable", retry_after=retry) from None
    except QueueFull as error:
        raise ApiError(429, str(error), "rate_limit_error", retry_after=1) from None


def submit(request: web.Request, infill: InfillRequest,
           on_progress: Callable[[list[str]], None] | None = None) -> Ticket:
    batcher = request.app[BATCHER_KEY]
    with admitted(batcher):
        return batcher.submit(infill, on_progress)


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def abandon(request: web.Request, ticket: Ticket, reason: str) -> None:
    """Call a request off; its future's exception, which no one awaits any more, is taken here so that asyncio
    does not report it as never retrieved."""
    request.app[BATCHER_KEY].cancel(ticket, reason)
    ticket.future.add_done_callback(_retrieve)


def timeout_s(request: web.Request, infill: InfillRequest) -> float:
    if infill.timeout_ms is not None:
        return infill.timeout_ms / 1000
    return request.app[CONFIG_KEY].request_timeout_s


def deadline_error(limit_s: float) -> ApiError:
    return ApiError(504, f"The request did not finish within {limit_s * 1000:.0f} ms.", "timeout")


def engine_error(error: BaseException) -> ApiError:
    """The HTTP error for what a ticket's future raised."""
    if isinstance(error, Cancelled):
        return ApiError(CLIENT_CLOSED, str(error), "cancelled")
    if isinstance(error, NotReady):  # shutting down
        return ApiError(503, str(error), "engine_unavailable")
    if isinstance(error, RequestError):  # InfillError: the request does not fit this model
        return bad_request(str(error))
    if isinstance(error, EngineFailure):
        return ApiError(500, str(error), "engine_error")
    raise error


async def run_request(request: web.Request, infill: InfillRequest) -> InfillResult:
    """Queue a request on the batcher and wait for it; a disconnect or the deadline cancels it at the next step."""
    ticket = submit(request, infill)
    limit = timeout_s(request, infill)
    try:
        return await asyncio.wait_for(asyncio.shield(ticket.future), limit)
    except asyncio.TimeoutError:
        abandon(request, ticket, "timeout")
        raise deadline_error(limit) from None
    except asyncio.CancelledError:
        abandon(request, ticket, "disconnect")
        raise
    except (Cancelled, NotReady, RequestError, EngineFailure) as error:
        raise engine_error(error) from None





def checked(parse: Callable[..., Any], *args: Any) -> Any:
    """`parse(*args)`, its RequestError answered as a 400."""
    try:
        return parse(*args)
    except RequestError as error:
        raise bad_request(str(error)) from None


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One server-sent event."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class SettledTextStream:
    """The first candidate's text written as its canvas settles from the left, held back where one of `stop` could
    still begin; a route says how a piece is written (`write_piece`) and how the stream ends."""

    def __init__(self, stop: tuple[str, ...], response: web.StreamResponse) -> None:
        self.stop, self.response = stop, response
        self.sent = ""
        self.stopped = False

    async def write_piece(self, piece: str) -> None:
        raise NotImplementedError

    async def progress(self, settled: list[str]) -> None:
        text = settled[0]
        if self.stopped or not text.startswith(self.sent):
            return
        length, self.stopped = streamable_length(text, self.stop)
        if length > len(self.sent):
            await self.write_piece(text[len(self.sent) : length])
            self.sent = text[:length]


class StreamWriter(Protocol):
    """How one route writes a stream: the settled texts as they grow, the finished result, or an error."""

    async def progress(self, settled: list[str]) -> None: ...

    async def finish(self, result: InfillResult) -> None: ...

    async def error(self, error: ApiError) -> None: ...


async def stream_infill(request: web.Request, infill: InfillRequest, response: web.StreamResponse,
                        writer: StreamWriter) -> web.StreamResponse:
    """Queue a request and stream it through `writer` as its canvas settles from the left. A full queue or a loading
    model is answered as plain JSON (nothing is sent before the ticket exists); a client that goes away cancels the
    request at the next step; the deadline ends the stream with an error."""
    events: asyncio.Queue[list[str] | None] = asyncio.Queue()
    ticket = submit(request, infill, events.put_nowait)
    ticket.future.add_done_callback(lambda _: events.put_nowait(None))
    limit = timeout_s(request, infill)
    deadline = time.monotonic() + limit
    try:
        await response.prepare(request)
        try:
            while (settled := await asyncio.wait_for(events.get(), max(deadline - time.monotonic(), 0))) is not None:
                await writer.progress(settled)
        except asyncio.TimeoutError:
            abandon(request, ticket, "timeout")
            await writer.error(deadline_error(limit))
            return response
        error = ticket.future.exception()
        if error is None:
            await writer.finish(ticket.future.result())
        else:
            await writer.error(engine_error(error))
    except asyncio.CancelledError:
        abandon(request, ticket, "disconnect")
        raise
    except ConnectionError:  # the client left between two chunks
        abandon(request, ticket, "disconnect")
        request[CLIENT_GONE] = True
    return response


def sse_response() -> web.StreamResponse:
    return web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})  # a reverse proxy must not hold chunks back
