"""The engine's HTTP server (aiohttp): the routes of engine/routes/ behind one middleware (bearer key, JSON errors
for every failure, request counts per route), JSON answers for malformed HTTP, and the process around them.

Handlers only translate between JSON and the batcher; every body is read into an `InfillRequest` and checked in
full before it is queued. The model runs on the batcher's own thread.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from mercury_lsp.engine import daemon
from mercury_lsp.engine.batcher import Batcher
from mercury_lsp.engine.metrics import EngineMetrics
from mercury_lsp.engine.routes import edit, llama_cpp, native, ollama, openai
from mercury_lsp.engine.routes.plumbing import (
    ACTIVITY_KEY,
    BATCHER_KEY,
    CLIENT_CLOSED,
    CLIENT_GONE,
    CONFIG_KEY,
    METRICS_KEY,
    Activity,
    ApiError,
    ServeConfig,
    error_response,
)

__all__ = ["ROUTES", "ServeConfig", "build_app", "serve"]

log = logging.getLogger(__name__)
access_log = logging.getLogger("aiohttp.access")


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
    **native.ROUTES, **openai.ROUTES, **ollama.ROUTES, **llama_cpp.ROUTES, **edit.ROUTES,
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


REPLACED_CHECK_S = 2.0


async def _exit_when_replaced(port_file: Path, stop: asyncio.Event) -> None:
    """An engine whose port file names another engine exits: clients found the newer one (this one may have been
    frozen while they gave up on it), and one machine must not hold two models."""
    while not stop.is_set():
        await asyncio.sleep(REPLACED_CHECK_S)
        if daemon.port_file_names_another(port_file):
            log.warning("the port file %s now names another engine: exiting", port_file)
            stop.set()


async def serve(config: ServeConfig) -> None:
    """Bind first, then load the model in the background, then serve until SIGTERM/SIGINT or idle exit."""
    metrics = EngineMetrics()
    batcher = Batcher(config.model, config.device, metrics, config.max_batch, config.max_queue,
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
            daemon.write_port_file(config.port_file, url, config.model, config.device)
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
    watchers = []
    if config.idle_exit_minutes > 0:
        watchers.append(asyncio.create_task(_exit_when_idle(batcher, app[ACTIVITY_KEY], config.idle_exit_minutes,
                                                            stop)))
    if config.port_file is not None:
        watchers.append(asyncio.create_task(_exit_when_replaced(config.port_file, stop)))
    try:
        await stop.wait()
    finally:
        for task in watchers:
            task.cancel()
        if config.port_file is not None:
            daemon.remove_port_file(config.port_file)
        batcher.stop()
        await runner.cleanup()
        log.info("stopped")
        if batcher.thread_alive:
            # Finalizing the interpreter under a thread that is inside torch's native code (a load that outlived
            # the stop timeout) aborts the process; nothing is left to clean up, so leave at once.
            logging.shutdown()
            os._exit(0)
