"""The engine's HTTP API (aiohttp): /health, /v1/infill, OpenAI-style /v1/completions, /v1/cancel, /metrics.

Handlers only translate between JSON and the batcher; the model runs on the batcher's own thread.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mercury_lsp.engine import daemon
from mercury_lsp.engine.batcher import (
    Batcher,
    Cancelled,
    EngineFailure,
    NotReady,
    QueueFull,
)
from mercury_lsp.engine.metrics import EngineMetrics
from mercury_lsp.infill_api import InfillRequest, RequestError, parse_infill

if TYPE_CHECKING:
    from mercury_lsp.engine.infill import InfillResult

log = logging.getLogger(__name__)

ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf'  # no headers: the bearer key must never reach a log


@dataclass
class ServeConfig:
    """Everything `mercury-engine serve` was told."""

    model_path: Path
    host: str = "127.0.0.1"
    port: int = 8765
    device: str = "auto"
    api_key: str | None = None
    max_batch: int = 16
    max_queue: int = 64
    threads: int = 0  # CPU threads for torch (0 = torch's default)
    body_limit: int = 1024 * 1024
    request_timeout_s: float = 60.0
    idle_exit_minutes: float = 0.0  # 0 = never
    port_file: Path | None = None


BATCHER_KEY = web.AppKey("batcher", Batcher)
METRICS_KEY = web.AppKey("metrics", EngineMetrics)
CONFIG_KEY = web.AppKey("config", ServeConfig)


class ApiError(Exception):
    """An HTTP error answered as JSON {"error": {"message", "type"}}."""

    def __init__(self, status: int, message: str, kind: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.retry_after = status, message, kind, retry_after


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_response(status: int, message: str, kind: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": {"message": message, "type": kind}}, status=status, headers=headers)


# -- request fields ---------------------------------------------------------------------------------------------

COMPLETION_MAX_TOKENS = 64  # OpenAI's default is 16; completions in an editor want the language server's 64


def parse_request(body: dict[str, Any], allow_unknown: bool = False) -> InfillRequest:
    try:
        return parse_infill(body, allow_unknown=allow_unknown)
    except RequestError as error:
        raise ApiError(400, str(error), "invalid_request_error") from None


def parse_completion(body: dict[str, Any]) -> tuple[InfillRequest, list[str]]:
    """The infill request and stop strings in an OpenAI completions body (unknown fields ignored)."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "Field 'prompt' must be a string (or a list of one).", "invalid_request_error")
    if body.get("stream"):
        raise ApiError(400, "Streaming is not supported; send stream: false.", "invalid_request_error")
    if body.get("echo"):
        raise ApiError(400, "echo is not supported; send echo: false.", "invalid_request_error")
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise ApiError(400, "Field 'stop' must be a non-empty string or a list of up to 4 of them.",
                       "invalid_request_error")
    if "model" in body and not isinstance(body["model"], str):
        raise ApiError(400, "Field 'model' must be a string.", "invalid_request_error")
    given = {key: value for key, value in body.items() if value is not None}  # OpenAI clients send null for "default"
    fields = {"max_tokens": COMPLETION_MAX_TOKENS, "prefix": prompt}
    fields |= {key: given[key] for key in ("suffix", "max_tokens", "temperature", "n", "seed", "id", "timeout_ms")
               if key in given}
    if "\n" in stop:
        fields["single_line"] = True  # the text is cut at its first newline anyway: let the engine stop there
    request = parse_request(fields)
    return request, stop


def apply_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut the text before the earliest stop string; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# -- handlers ---------------------------------------------------------------------------------------------------

async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()  # aiohttp enforces the body limit here (413)
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError(400, "The request body is not UTF-8 text.", "invalid_request_error") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"The request body is not valid JSON ({error.msg} at line {error.lineno} "
                            f"column {error.colno}).", "invalid_request_error") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_request_error")
    return body


async def run_request(request: web.Request, infill: InfillRequest) -> InfillResult:
    """Queue a request on the batcher and wait for it; a disconnect or the deadline cancels its jobs."""
    batcher = request.app[BATCHER_KEY]
    timeout_s = (infill.timeout_ms / 1000 if infill.timeout_ms is not None
                 else request.app[CONFIG_KEY].request_timeout_s)
    try:
        ticket = batcher.submit(infill)
    except NotReady as error:
        retry = 2 if batcher.state == "loading" else None
        raise ApiError(503, str(error), "engine_unavailable", retry_after=retry) from None
    except QueueFull as error:
        raise ApiError(429, str(error), "rate_limit_error", retry_after=1) from None
    try:
        return await asyncio.wait_for(asyncio.shield(ticket.future), timeout_s)
    except asyncio.TimeoutError:
        batcher.cancel(ticket, "timeout")
        raise ApiError(504, f"The request did not finish within {timeout_s * 1000:.0f} ms.", "timeout") from None
    except asyncio.CancelledError:
        batcher.cancel(ticket, "disconnect")
        raise
    except Cancelled as error:
        raise ApiError(499, str(error), "cancelled") from None
    except NotReady as error:  # shutting down
        raise ApiError(503, str(error), "engine_unavailable") from None
    except EngineFailure as error:
        raise ApiError(500, str(error), "engine_error") from None
    except RequestError as error:  # InfillError: the request does not fit this model
        raise ApiError(400, str(error), "invalid_request_error") from None


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


async def handle_completions(request: web.Request) -> web.Response:
    infill, stop = parse_completion(await read_json(request))
    result = await run_request(request, infill)
    choices = []
    for index, completion in enumerate(result.completions):
        text, stopped = apply_stop(completion.text, stop)
        reason = "stop" if stopped or completion.tokens < infill.max_tokens else "length"
        choices.append({"text": text, "index": index, "logprobs": None, "finish_reason": reason})
    prompt_tokens = result.prefix_tokens + result.suffix_tokens
    completion_tokens = sum(c.tokens for c in result.completions)
    return web.json_response({
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.app[BATCHER_KEY].model_name,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "steps": result.steps,
        "ms": round(result.ms, 3),
    })


async def handle_cancel(request: web.Request) -> web.Response:
    body = await read_json(request)
    client_id = body.get("id")
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str):
        raise ApiError(400, "Field 'id' is required.", "invalid_request_error")
    return web.json_response({"id": client_id, "cancelled": request.app[BATCHER_KEY].cancel_client_id(client_id)})


async def handle_health(request: web.Request) -> web.Response:
    batcher = request.app[BATCHER_KEY]
    payload: dict[str, Any] = {"status": batcher.state, "model": batcher.model_name, "device": batcher.device_name,
                               "max_batch": batcher.max_batch}
    if batcher.dtype_name is not None:
        payload |= {"dtype": batcher.dtype_name, "context_tokens": batcher.context_tokens}
    if batcher.message:
        payload["message"] = batcher.message
    return web.json_response(payload)


async def handle_models(request: web.Request) -> web.Response:
    name = request.app[BATCHER_KEY].model_name
    return web.json_response({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "mercury"}]})


async def handle_metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[METRICS_KEY].render(), content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})


# -- middleware -------------------------------------------------------------------------------------------------

OPEN_PATHS = {"/health"}  # editors read the loading state before they know any key


def _authorized(request: web.Request, key: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), key.encode())


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bearer key, JSON errors for every failure, request counts."""
    config = request.app[CONFIG_KEY]
    route = request.match_info.route.resource
    endpoint = route.canonical if route is not None else "other"
    try:
        if config.api_key and request.path not in OPEN_PATHS and not _authorized(request, config.api_key):
            response = error_response(401, "A valid bearer API key is required.", "authentication_error")
        else:
            response = await handler(request)
    except ApiError as error:
        response = error_response(error.status, error.message, error.kind, error.retry_after)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, f"The request body is larger than {config.body_limit} bytes.",
                                  "request_too_large")
    except web.HTTPException as error:
        response = error_response(error.status, error.reason, "http_error")
    except asyncio.CancelledError:
        request.app[METRICS_KEY].count_request(endpoint, 499)
        raise
    except Exception:
        log.exception("unexpected error on %s", request.path)
        response = error_response(500, "The engine hit an internal error.", "engine_error")
    request.app[METRICS_KEY].count_request(endpoint, response.status)
    return response


def build_app(config: ServeConfig, batcher: Batcher, metrics: EngineMetrics) -> web.Application:
    app = web.Application(client_max_size=config.body_limit, middlewares=[api_middleware])
    app[CONFIG_KEY] = config
    app[BATCHER_KEY] = batcher
    app[METRICS_KEY] = metrics
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/v1/models", handle_models)
    app.router.add_post("/v1/infill", handle_infill)
    app.router.add_post("/v1/completions", handle_completions)
    app.router.add_post("/v1/cancel", handle_cancel)
    return app


# -- process ----------------------------------------------------------------------------------------------------

async def _exit_when_idle(batcher: Batcher, minutes: float, stop: asyncio.Event) -> None:
    idle_s = minutes * 60
    while not stop.is_set():
        await asyncio.sleep(min(idle_s / 4, 30.0))
        if not batcher.busy and time.monotonic() - batcher.last_activity >= idle_s:
            log.info("no requests for %g minutes: exiting", minutes)
            stop.set()


async def serve(config: ServeConfig) -> None:
    """Bind first, then load the model in the background, then serve until SIGTERM/SIGINT or idle exit."""
    metrics = EngineMetrics()
    batcher = Batcher(config.model_path, config.device, metrics, config.max_batch, config.max_queue,
                      config.threads)
    runner = web.AppRunner(build_app(config, batcher, metrics), handler_cancellation=True,
                           access_log_format=ACCESS_LOG_FORMAT)
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
        except OSError as error:
            await runner.cleanup()
            raise OSError(f"Cannot write the port file {config.port_file} ({error.strerror}).") from None
    log.info("listening on %s", url)
    batcher.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    idle_task = None
    if config.idle_exit_minutes > 0:
        idle_task = asyncio.create_task(_exit_when_idle(batcher, config.idle_exit_minutes, stop))
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
