"""Canvas slots: every request's context and canvas live in a fixed slot that comes back when the request ends,
however it ends; the step reads the host once."""

from __future__ import annotations

import asyncio
import random

import pytest

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.batcher import Batcher, Cancelled
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.errors import InfillError
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.metrics import EngineMetrics
from mercury_lsp.engine.step import canvas_width

from checkpoints import SAMPLE_CODE


def test_canvas_widths_leave_room_for_the_healed_token():
    assert [canvas_width(n) for n in (1, 8, 9, 10, 64, 65, 66, 257)] == [9, 9, 9, 17, 65, 65, 129, 257]


def test_a_thousand_requests_finished_or_called_off_give_every_slot_back(tiny_checkpoint):
    # A plain asyncio.run, not pytest-asyncio: bench/gpu_session.sh runs tests/engine where that plugin is absent.
    asyncio.run(_thousand_requests(tiny_checkpoint))


async def _thousand_requests(tiny_checkpoint) -> None:
    batcher = Batcher(tiny_checkpoint, "cpu", EngineMetrics(), max_batch=4, max_queue=2000, threads=1)
    batcher.start()
    rng = random.Random(0)
    try:
        while batcher.state in ("loading", "warming"):
            await asyncio.sleep(0.02)
        assert batcher.state == "ok"
        tickets = []
        for i in range(1000):
            cut = rng.randrange(1, len(SAMPLE_CODE))
            request = InfillRequest(prefix=SAMPLE_CODE[:cut], suffix=SAMPLE_CODE[cut:], max_tokens=rng.choice([4, 8, 16]),
                                    n=rng.choice([1, 1, 2]), seed=i, id=f"r{i}")
            tickets.append(batcher.submit(request))
            if rng.random() < 0.3:  # called off while queued, starting or mid-flight
                await asyncio.sleep(rng.choice([0, 0.001, 0.005]))
                batcher.cancel(rng.choice(tickets[-5:]), "disconnect")
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        outcomes = await asyncio.wait_for(asyncio.gather(*(t.future for t in tickets), return_exceptions=True), 300)
        finished = [o for o in outcomes if not isinstance(o, BaseException)]
        called_off = [o for o in outcomes if isinstance(o, Cancelled)]
        assert len(finished) + len(called_off) == 1000 and finished and called_off
        while batcher.busy:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # the model thread frees cancelled slots at its next turn
        batcher.submit(InfillRequest(prefix="def f(", max_tokens=4))  # wakes it for that turn
        while batcher.busy:
            await asyncio.sleep(0.02)
        assert batcher._engine.slots_in_use == 0
        assert batcher._engine.prefix_cache.bytes <= batcher._engine.prefix_cache.max_bytes
    finally:
        batcher.stop()


def test_the_step_reads_the_host_once(tiny_checkpoint):
    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"), EngineSettings(max_batch=4))
    jobs = engine.start(InfillRequest(prefix=SAMPLE_CODE[:200], suffix=SAMPLE_CODE[200:], max_tokens=32, steps=16))
    jobs += engine.start(InfillRequest(prefix=SAMPLE_CODE[:90], max_tokens=16, n=2))
    reads = engine.canvas_step.host_reads
    steps = 0
    while not all(j.done for j in jobs):
        engine.step(jobs)
        steps += 1
    assert engine.canvas_step.host_reads - reads == steps  # one status read per batched step
    engine.release(jobs)


def test_a_request_that_cannot_start_takes_no_slot(tiny_checkpoint, monkeypatch):
    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"), EngineSettings(max_batch=2))
    with pytest.raises(InfillError, match="free canvas slots"):
        engine.start(InfillRequest(prefix="x = ", max_tokens=4, n=3))
    assert engine.slots_in_use == 0

    def device_lost(jobs):
        raise RuntimeError("device lost")

    monkeypatch.setattr(engine, "_refresh_and_step", device_lost)
    with pytest.raises(RuntimeError):
        engine.start(InfillRequest(prefix="x = ", max_tokens=4, n=2))
    assert engine.slots_in_use == 0
