"""An engine that is capturing its CUDA graphs says `warming` on /health: the language server waits for it as it
waits for a loading one, and passes the capture progress on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from mercury_lsp.lifecycle import EngineLink
from mercury_lsp.settings import Settings


@contextlib.asynccontextmanager
async def health_server(health: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """A loopback server whose GET /health is `health`; yields its base URL."""
    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_warming_engine_is_waited_for_with_its_progress():
    answers = iter([{"status": "loading", "model": "m"},
                    {"status": "warming", "model": "m", "message": "Capturing CUDA graphs of the denoising step (7/30)."},
                    {"status": "ok", "model": "m", "device": "cuda"}])
    last: dict = {}

    async def health(request: web.Request) -> web.Response:
        last.update(next(answers, {"status": "ok", "model": "m", "device": "cuda"}))
        return web.json_response(last)

    async with health_server(health) as url:
        seen: list[tuple[str, str | None]] = []
        link = EngineLink(Settings(engine_url=url), lambda state, message: seen.append((state, message)), poll_s=0.01)
        try:
            for _ in range(300):
                if link.ready_client() is not None:
                    break
                await asyncio.sleep(0.01)
            assert link.state == "ready"
            assert ("loading", "Capturing CUDA graphs of the denoising step (7/30).") in seen
            assert all(state != "error" for state, _ in seen)
        finally:
            await link.close()


async def test_switching_completions_back_on_reconnects_without_waiting_for_a_request():
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": "m", "device": "cpu"})

    async with health_server(health) as url:
        settings = Settings(engine_url=url)
        link = EngineLink(settings, lambda state, message: None, poll_s=0.01)
        try:
            link.ready_client()
            for _ in range(300):
                if link.state == "ready":
                    break
                await asyncio.sleep(0.01)
            link.configure(dataclasses.replace(settings, enabled=False))
            assert link.state == "disabled"
            link.configure(settings)  # no request follows: the link reconnects by itself
            for _ in range(300):
                if link.state == "ready":
                    break
                await asyncio.sleep(0.01)
            assert link.state == "ready"
        finally:
            await link.close()
