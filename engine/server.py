"""The engine's HTTP API (aiohttp): /health, /v1/infill, OpenAI-style /v1/completions, Inception-style
/v1/fim/completions (both streamed on request), /v1/cancel, /metrics.

Handlers only translate between JSON and the batcher; every body is read into an `InfillRequest` and checked in
full before it is queued, and every failure, malformed HTTP included, is answered as JSON. The model runs on the
batcher's own thread.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from mercury_lsp import engine_identity
from mercury_lsp.completions_api import (
    AnswerHead,
    CompletionRequest,
    Route,
    apply_stop,
    chunk_json,
    completion_answer,
    finish_reason,
    parse_completion_request,
    streamable_length,
    usage_chunk_json,
)
from mercury_lsp.engine import daemon
from mercury_lsp.engine.batcher import (
    Batcher,
    Cancelled,
    EngineFailure,
    NotReady,
    QueueFull,
    Ticket,
)
from mercury_lsp.engine.detokenize import cut_spans
from mercury_lsp.engine.metrics import CONTENT_TYPE, EngineMetrics
from mercury_lsp.infill_api import InfillRequest, RequestError, parse_infill

if TYPE_CHECKING:
    from mercury_lsp.engine.infill import InfillResult

log = logging.getLogger(__name__)
access_log = logging.getLogger("aiohttp.access")

CLIENT_CLOSED = 499  # nginx's status for a request the client gave up on; only in metrics, no one receives it
CLIENT_GONE = "mercury.client_gone"  # request key: a stream's client left, though its 200 had been sent


@dataclass
class ServeConfig:
    """Everything `mercury-engine serve` was told."""

    model_path: Path
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


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error")


# -- reading requests -------------------------------------------------------------------------------------------

def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: web.Request) -> Any:
    raw = await request.read()  # aiohttp enforces the body limit here (413)
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise _bad_request("The request body is not UTF-8 text.") from None
    except json.JSONDecodeError as error:
        raise _bad_request(f"The request body is not valid JSON ({error.msg} at line {error.lineno} "
                           f"column {error.colno}).") from None
    except RecursionError:
        raise _bad_request("The request body is nested too deeply.") from None
    except ValueError as error:  # NaN/Infinity, or an integer literal longer than Python converts
        raise _bad_request(f"The request body is not valid JSON ({str(error).split(';')[0]}).") from None


def parse_request(body: Any) -> InfillRequest:
    try:
        return parse_infill(body)
    except RequestError as error:
        raise _bad_request(str(error)) from None


def parse_completion(body: Any, route: Route) -> CompletionRequest:
    try:
        return parse_completion_request(body, route)
    except RequestError as error:
        raise _bad_request(str(error)) from None


# -- the batcher ------------------------------------------------------------------------------------------------

def submit(request: web.Request, infill: InfillRequest,
           on_progress: Callable[[list[str]], None] | None = None) -> Ticket:
    batcher = request.app[BATCHER_KEY]
    try:
        return batcher.submit(infill, on_progress)
    except NotReady as error:
        retry = 2 if batcher.state in ("loading", "warming") else None
        raise ApiError(503, str(error), "engine_unavailable", retry_after=retry) from None
    except QueueFull as error:
        raise ApiError(429, str(error), "rate_limit_error", retry_after=1) from None


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
        return _bad_request(str(error))
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


# -- handlers ---------------------------------------------------------------------------------------------------

async def handle_infill(request: web.Request) -> web.Response:
    infill = parse_request(await read_json(request))
    result = await run_request(request, infill)
    first = result.completions[0]
    payload: dict[str, Any] = {"text": first.text, "tokens": first.tokens, "steps": result.steps,
                               "ms": round(result.ms, 3), "spans": [s.to_json() for s in first.spans]}
    if infill.n > 1:
        distinct = {c.text: c for c in reversed(result.completions)}  # the first of each text wins
        payload["candidates"] = result.candidates
        payload["candidate_spans"] = [[s.to_json() for s in distinct[text].spans] for text in result.candidates]
    return web.json_response(payload)


def _head(request: web.Request) -> AnswerHead:
    return AnswerHead(f"cmpl-{uuid.uuid4().hex}", int(time.time()), request.app[BATCHER_KEY].model_name)


def completions_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of /v1/completions or /v1/fim/completions: one JSON answer, or server-sent events."""

    async def handle(request: web.Request) -> web.StreamResponse:
        completion = parse_completion(await read_json(request), route)
        if completion.stream:
            return await stream_completion(request, completion)
        result = await run_request(request, completion.infill)
        cut = []
        for item in result.completions:
            text, stopped = apply_stop(item.text, completion.stop)
            cut.append((text, cut_spans(item.text, item.spans, len(text))[1], stopped))
        answer = completion_answer(_head(request), completion, result.completions,
                                   result.prefix_tokens + result.suffix_tokens, cut)
        answer |= {"steps": result.steps, "ms": round(result.ms, 3)}
        return web.json_response(answer)

    return handle


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class _Stream:
    """The choices of one streamed request: what each has sent, and whether it has ended."""

    def __init__(self, request: web.Request, completion: CompletionRequest, response: web.StreamResponse) -> None:
        self.head = _head(request)
        self.completion = completion
        self.response = response
        n = completion.infill.n
        self.sent = [""] * n
        self.ended = [False] * n

    async def progress(self, settled: list[str]) -> None:
        """Send what each choice's settled text added, held back where a stop string could still begin."""
        for index, text in enumerate(settled):
            if self.ended[index] or not text.startswith(self.sent[index]):
                continue
            length, stopped = streamable_length(text, self.completion.stop)
            if length > len(self.sent[index]):
                await self._send(index, text[len(self.sent[index]) : length])
                self.sent[index] = text[:length]
            if stopped:
                await self._send(index, "", "stop")
                self.ended[index] = True

    async def finish(self, result: InfillResult) -> None:
        """The rest of each choice, its finish reason, the usage if asked for, and [DONE]."""
        for index, item in enumerate(result.completions):
            if self.ended[index]:
                continue
            text, stopped = apply_stop(item.text, self.completion.stop)
            if text.startswith(self.sent[index]):
                rest = text[len(self.sent[index]) :]
            else:  # the engine revised text it had called settled: what was sent stays, nothing is appended
                log.warning("streamed text of choice %d was revised after it was sent", index)
                rest = ""
            await self._send(index, rest, finish_reason(item, self.completion.infill.max_tokens, stopped))
        if self.completion.include_usage:
            tokens = sum(c.tokens for c in result.completions)
            await self.response.write(_event(usage_chunk_json(
                self.head, self.completion, result.prefix_tokens + result.suffix_tokens, tokens)))
        await self.response.write(_event("[DONE]"))

    async def _send(self, index: int, text: str, reason: str | None = None) -> None:
        await self.response.write(_event(chunk_json(self.head, self.completion, index, text, reason)))


async def stream_completion(request: web.Request, completion: CompletionRequest) -> web.StreamResponse:
    """Server-sent events in OpenAI's chunk shape: each choice's text as its canvas settles from the left, then its
    finish reason, then `data: [DONE]`. A client that goes away cancels the request at the next step."""
    events: asyncio.Queue[list[str] | None] = asyncio.Queue()
    ticket = submit(request, completion.infill, events.put_nowait)  # a full queue or a loading model: plain JSON
    ticket.future.add_done_callback(lambda _: events.put_nowait(None))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})  # a reverse proxy must not hold chunks back
    stream = _Stream(request, completion, response)
    limit = timeout_s(request, completion.infill)
    deadline = time.monotonic() + limit
    try:
        await response.prepare(request)
        try:
            while (settled := await asyncio.wait_for(events.get(), max(deadline - time.monotonic(), 0))) is not None:
                await stream.progress(settled)
        except asyncio.TimeoutError:
            abandon(request, ticket, "timeout")
            await response.write(_event(deadline_error(limit).to_json()))
            return response
        error = ticket.future.exception()
        if error is None:
            await stream.finish(ticket.future.result())
        else:
            await response.write(_event(engine_error(error).to_json()))
    except asyncio.CancelledError:
        abandon(request, ticket, "disconnect")
        raise
    except ConnectionError:  # the client left between two chunks
        abandon(request, ticket, "disconnect")
        request[CLIENT_GONE] = True
    return response


async def handle_cancel(request: web.Request) -> web.Response:
    body = await read_json(request)
    client_id = body.get("id") if isinstance(body, dict) else None
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str):
        raise _bad_request("Field 'id' is required.")
    return web.json_response({"id": client_id, "cancelled": request.app[BATCHER_KEY].cancel_client_id(client_id)})


async def handle_health(request: web.Request) -> web.Response:
    batcher = request.app[BATCHER_KEY]
    payload: dict[str, Any] = {"status": batcher.state, "model": batcher.model_name, "device": batcher.device_name,
                               "max_batch": batcher.max_batch}
    if batcher.dtype_name is not None:
        payload |= {"dtype": batcher.dtype_name, "context_tokens": batcher.context_tokens, "memory": batcher.memory()}
    if batcher.message:
        payload["message"] = batcher.message
    headers: dict[str, str] = {}
    challenge = request.headers.get(engine_identity.CHALLENGE_HEADER)
    if challenge is not None:
        if not engine_identity.is_challenge(challenge):
            raise _bad_request(f"{engine_identity.CHALLENGE_HEADER} must be 32 to 128 lowercase hex digits.")
        key = request.app[CONFIG_KEY].api_key
        if key:
            headers[engine_identity.PROOF_HEADER] = engine_identity.proof(key, challenge)
            request.app[ACTIVITY_KEY].last_proof = time.monotonic()
    return web.json_response(payload, headers=headers)


async def handle_models(request: web.Request) -> web.Response:
    name = request.app[BATCHER_KEY].model_name
    return web.json_response({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "mercury"}]})


async def handle_metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS_KEY].render(),
                        headers={"Content-Type": CONTENT_TYPE, "X-Content-Type-Options": "nosniff"})


# -- middleware -------------------------------------------------------------------------------------------------

OPEN_PATHS = {"/health"}  # editors read the loading state before they know any key


def _authorized(request: web.Request, key: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Header bytes that are not UTF-8 arrive as surrogate escapes; compare bytes, whatever they are.
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), key.encode())


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bearer key, JSON errors for every failure, request counts."""
    config = request.app[CONFIG_KEY]
    route = request.match_info.route
    # Unknown paths share one label: they must not grow the label set.
    endpoint = route.resource.canonical if route.resource is not None and route.name != ELSEWHERE else "other"
    metrics = request.app[METRICS_KEY]
    try:
        if config.api_key and request.path not in OPEN_PATHS and not _authorized(request, config.api_key):
            raise ApiError(401, "A valid bearer API key is required.", "authentication_error")
        response = await handler(request)
    except ApiError as error:
        response = error_response(error.status, error.message, error.kind, error.retry_after)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, f"The request body is larger than {config.body_limit} bytes.",
                                  "request_too_large")
    except web.HTTPException as error:  # what aiohttp raises inside a handler (a body that is not what it said)
        response = error_response(error.status, f"{error.reason}.", "invalid_request_error")
    except asyncio.CancelledError:
        metrics.count_request(endpoint, CLIENT_CLOSED)
        raise
    except Exception:
        log.exception("unexpected error on %s", request.path)
        response = error_response(500, "The engine hit an internal error.", "engine_error")
    metrics.count_request(endpoint, CLIENT_CLOSED if request.get(CLIENT_GONE) else response.status)
    return response


# -- what aiohttp answers itself: malformed HTTP, the access log ------------------------------------------------------

class JsonErrorRequestHandler(RequestHandler):
    """Answers what never reaches a handler (a malformed request line or header, a broken chunked body) in the
    JSON error shape instead of aiohttp's plain text."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # a response is half sent: only closing the connection is left
            raise ConnectionError("The response is sent already; cannot send an error after it.")
        if status == 500:
            log.error("internal error on a request", exc_info=exc)
            response = error_response(500, "The engine hit an internal error.", "engine_error")
        else:
            # The exception's text quotes the offending bytes, which may hold a key: only its name is logged.
            reason = type(exc).__name__ if exc is not None else "malformed request"
            log.info("malformed HTTP from %s (%s)", request.remote, reason)
            response = error_response(status, f"The request is not valid HTTP/1.1 ({reason}).",
                                      "invalid_request_error")
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class EngineRunner(web.AppRunner):
    """The application's runner, with JSON answers for malformed HTTP."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return JsonErrorServer(plain.request_handler, request_factory=plain.request_factory,
                               handler_cancellation=plain.handler_cancellation, loop=plain._loop, **plain._kwargs)


class AccessLogger(AbstractAccessLogger):
    """Method, path and status only: no query string and no header, so a key sent in either never reaches a log."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.rel_url.path
        self.logger.info('%s "%s %s" %s %.3f', request.remote, request.method, path[:200], response.status, time)


async def handle_elsewhere(request: web.Request) -> web.Response:
    """Every path and method no route takes (a route of its own, so its Expect header is read by `expect`)."""
    path = request.path if len(request.path) <= 100 else request.path[:100] + "..."
    if any(request.path == path for _, path in ROUTES):
        raise ApiError(405, f"{path} does not take {request.method} requests.", "invalid_request_error")
    raise ApiError(404, f"There is no route {path} here.", "not_found_error")


async def expect(request: web.Request) -> web.StreamResponse | None:
    """The Expect header, read before any middleware: `100-continue` is honoured, anything else refused (aiohttp's
    own handler answers in plain text, and fails on a value that is not ASCII)."""
    if request.version != HttpVersion11:
        return None
    if request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not begun
        return None
    return error_response(417, "Only `Expect: 100-continue` is understood.", "invalid_request_error")


ELSEWHERE = "elsewhere"
ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    ("GET", "/health"): handle_health,
    ("GET", "/metrics"): handle_metrics,
    ("GET", "/v1/models"): handle_models,
    ("POST", "/v1/infill"): handle_infill,
    ("POST", "/v1/completions"): completions_handler("completions"),
    ("POST", "/v1/fim/completions"): completions_handler("fim"),
    ("POST", "/v1/cancel"): handle_cancel,
}


def build_app(config: ServeConfig, batcher: Batcher, metrics: EngineMetrics) -> web.Application:
    app = web.Application(client_max_size=config.body_limit, middlewares=[api_middleware])
    app[CONFIG_KEY] = config
    app[BATCHER_KEY] = batcher
    app[METRICS_KEY] = metrics
    app[ACTIVITY_KEY] = Activity()
    for (method, path), handler in ROUTES.items():
        app.router.add_route(method, path, handler, expect_handler=expect)
    app.router.add_route("*", "/{anything:.*}", handle_elsewhere, expect_handler=expect, name=ELSEWHERE)
    return app


# -- process ----------------------------------------------------------------------------------------------------

async def _exit_when_idle(batcher: Batcher, activity: Activity, minutes: float, stop: asyncio.Event) -> None:
    idle_s = minutes * 60
    while not stop.is_set():
        await asyncio.sleep(min(idle_s / 4, 30.0))
        last = max(batcher.last_activity, activity.last_proof)
        if not batcher.busy and time.monotonic() - last >= idle_s:
            log.info("no requests for %g minutes: exiting", minutes)
            stop.set()


async def serve(config: ServeConfig) -> None:
    """Bind first, then load the model in the background, then serve until SIGTERM/SIGINT or idle exit."""
    metrics = EngineMetrics()
    batcher = Batcher(config.model_path, config.device, metrics, config.max_batch, config.max_queue,
                      config.threads, config.engine_options)
    app = build_app(config, batcher, metrics)
    runner = EngineRunner(app, handler_cancellation=True, access_log_class=AccessLogger, access_log=access_log)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise OSError(f"Cannot listen on {config.host}:{config.port} ({error.strerror}).") from None
    host, port = runner.addresses[0][:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    if config.port_file is not None:
        try:
            daemon.write_port_file(config.port_file, url, str(config.model_path), config.device)
        except (OSError, daemon.DaemonError) as error:
            await runner.cleanup()
            detail = error.strerror if isinstance(error, OSError) else str(error)
            raise OSError(f"Cannot write the port file {config.port_file} ({detail}).") from None
    log.info("listening on %s", url)
    batcher.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    idle_task = None
    if config.idle_exit_minutes > 0:
        idle_task = asyncio.create_task(_exit_when_idle(batcher, app[ACTIVITY_KEY], config.idle_exit_minutes, stop))
    try:
        await stop.wait()
    finally:
        if idle_task is not None:
            idle_task.cancel()
        if config.port_file is not None:
            daemon.remove_port_file(config.port_file)
        batcher.stop()
        await runner.cleanup()
        log.info("stopped")
