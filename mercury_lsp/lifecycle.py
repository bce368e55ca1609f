"""The language server's engine: find or start it, follow it while it loads, restart it when it dies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Literal

from mercury_lsp.engine_client import INCEPTION_URL, EngineClient, EngineError
from mercury_lsp.settings import Settings

State = Literal["loading", "ready", "error", "disabled"]
StateListener = Callable[[State, "str | None"], None]

log = logging.getLogger(__name__)

# How long an engine may stay unreachable before we call it dead: a local one may still be
# starting its process; a configured URL should answer at once.
START_GRACE_S = 30.0
CONFIGURED_GRACE_S = 2.0
# After a fatal error, the next request may try again this much later.
RETRY_AFTER_S = 15.0


def _engine_settings(settings: Settings) -> tuple:
    return (settings.enabled, settings.engine_url, settings.backend, settings.api_key,
            settings.remote_model, settings.auto_start, settings.model, settings.device, settings.ca_bundle,
            settings.fim_template)


async def _local_engine(settings: Settings) -> EngineClient:
    """A client of this user's shared engine, started detached when none answers (and allowed): the engine must
    prove it holds the runtime folder's secret before it is sent any text."""
    # The daemon uses POSIX file locks: import it only when the local engine is wanted.
    from mercury_lsp.engine import daemon

    try:
        if settings.auto_start:
            endpoint = await asyncio.to_thread(daemon.ensure_engine, settings.model, settings.device, 0)
        else:
            endpoint = await asyncio.to_thread(daemon.running_engine)
    except daemon.DaemonError as error:
        raise EngineError(str(error)) from None
    if endpoint is None:
        raise EngineError("No engine is running and mercury.autoStart is false.")
    return EngineClient(endpoint.url, "mercury", endpoint.key, identity_key=endpoint.key)


async def _client(settings: Settings) -> EngineClient:
    """A client of the configured engine, Inception's service for the `inception` backend, else the local one."""
    url = settings.engine_url or (INCEPTION_URL if settings.backend == "inception" else None)
    if url is None:
        return await _local_engine(settings)
    return EngineClient(url, settings.backend, settings.api_key, settings.remote_model,
                        ca_bundle=settings.ca_bundle, fim_template=settings.fim_template)


class EngineLink:
    """State machine loading -> ready -> (died) loading -> ready, or error, or disabled.

    Never blocks a caller: `ready_client` returns None and works in the background.
    """

    def __init__(self, settings: Settings, on_change: StateListener, poll_s: float = 0.2) -> None:
        self.settings = settings
        self.state: State = "loading" if settings.enabled else "disabled"
        self.message: str | None = None
        self.health: dict = {}
        self.client: EngineClient | None = None
        self._on_change = on_change
        self._poll_s = poll_s
        self._starting: asyncio.Task | None = None
        self._failed_at = 0.0
        self._wanted = False  # an engine was asked for: after a settings change, connect again at once

    def configure(self, settings: Settings) -> None:
        """Take new settings; a different engine target means a fresh connection."""
        changed = _engine_settings(settings) != _engine_settings(self.settings)
        self.settings = settings
        if not changed:
            return
        self._drop_connection()
        self._set("loading" if settings.enabled else "disabled", None)
        self._failed_at = 0.0
        if settings.enabled and self._wanted:
            self.ready_client()  # reconnect now, not at the next request: the editor shows "ready" without a keystroke

    def ready_client(self) -> EngineClient | None:
        """The client when the engine is ready; otherwise start (or keep) it coming and return None."""
        if self.state == "ready" and self.client is not None:
            return self.client
        if self.state == "disabled":
            return None
        if self.state == "error" and time.monotonic() - self._failed_at < RETRY_AFTER_S:
            return None
        if self._starting is None or self._starting.done():
            self._wanted = True
            self._set("loading", "Starting the engine.")
            self._starting = asyncio.create_task(self._start())
        return None

    async def wait_ready(self, timeout: float) -> EngineClient | None:
        """For explicit requests: the client once ready, or None on error or after `timeout`."""
        deadline = time.monotonic() + timeout
        while (client := self.ready_client()) is None:
            if self.state != "loading" or time.monotonic() > deadline:
                return None
            await asyncio.sleep(self._poll_s)
        return client

    def engine_failed(self, error: EngineError) -> None:
        """A request found the engine gone: reconnect (and restart it) in the background."""
        if not error.unreachable or self.state != "ready":
            return
        log.warning("engine lost: %s", error)
        self._drop_connection()
        self._set("loading", "The engine stopped answering; restarting it.")
        self.ready_client()

    async def close(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        if self.client is not None:
            await self.client.close()

    def _drop_connection(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            self._starting = None
        if self.client is not None:
            asyncio.ensure_future(self.client.close())
            self.client = None

    def _set(self, state: State, message: str | None) -> None:
        if (state, message) == (self.state, self.message):
            return
        self.state, self.message = state, message
        self._on_change(state, message)

    async def _start(self) -> None:
        settings = self.settings
        try:
            client = await _client(settings)
            grace = START_GRACE_S if client.identity_key else CONFIGURED_GRACE_S
            try:
                await self._wait_until_ready(client, grace)
            except BaseException:
                await client.close()
                raise
        except asyncio.CancelledError:
            raise
        except EngineError as error:
            self._fail(str(error))
        except Exception as error:  # the daemon's own errors: no model, cannot spawn
            self._fail(f"The engine could not start: {error}")

    async def _wait_until_ready(self, client: EngineClient, grace: float) -> None:
        deadline = time.monotonic() + grace
        while True:
            try:
                health = await client.health()
            except EngineError as error:
                if not error.unreachable or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(self._poll_s)
                continue
            deadline = time.monotonic() + grace
            status = health.get("status")
            if status == "ok":
                self.client, self.health = client, health
                where = f" on {health['device']}" if health.get("device") else ""
                self._set("ready", f"{health.get('model') or 'model'}{where}")
                return
            if status == "warming":  # CUDA graphs being captured: the message says how far
                self._set("loading", health.get("message") or "Preparing the engine.")
            elif status == "loading":  # the message says how far a download has come
                self._set("loading", health.get("message") or f"Loading {health.get('model') or 'the model'}.")
            else:
                raise EngineError(health.get("message") or f"The engine reports status {status!r}.")
            await asyncio.sleep(self._poll_s)

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        self._failed_at = time.monotonic()
        self._set("error", message)
