"""The batcher in-process, for what HTTP cannot provoke: a failing step must not take the model thread down."""

from __future__ import annotations

import asyncio

import pytest

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.batcher import Batcher, EngineFailure
from mercury_lsp.engine.metrics import EngineMetrics


async def test_a_failed_step_fails_its_requests_and_the_thread_serves_on(tiny_checkpoint, monkeypatch):
    batcher = Batcher(tiny_checkpoint, "cpu", EngineMetrics(), threads=1)
    batcher.start()
    try:
        while batcher.state in ("loading", "warming"):
            await asyncio.sleep(0.02)
        assert batcher.state == "ok"
        real_step = batcher._engine.step

        def broken_step(jobs):
            monkeypatch.setattr(batcher._engine, "step", real_step)  # fail once, like a transient device error
            raise RuntimeError("device lost")

        monkeypatch.setattr(batcher._engine, "step", broken_step)
        failed = batcher.submit(InfillRequest(prefix="def f(", max_tokens=8))
        with pytest.raises(EngineFailure, match="RuntimeError"):
            await asyncio.wait_for(failed.future, 30)
        served = batcher.submit(InfillRequest(prefix="def f(", max_tokens=8))
        result = await asyncio.wait_for(served.future, 30)
        assert isinstance(result.text, str)
        assert not batcher.busy
    finally:
        batcher.stop()
