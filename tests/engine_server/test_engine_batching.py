"""Step-level batching in a real engine: concurrent equals serial, cancellation, deadlines, the bounded queue."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from checkpoints import SAMPLE_CODE
from engine_process import metric

# 256 one-token steps over a long context: seconds even on the tiny model, so it is surely called off mid-flight.
LONG = {"prefix": SAMPLE_CODE * 6, "max_tokens": 256, "steps": 1024, "threshold": 1.0}


def varied_requests() -> list[dict]:
    """Eight requests that differ in context, canvas, seed, temperature and candidates."""
    return [
        {
            "prefix": SAMPLE_CODE[: 40 + 35 * i],
            "suffix": SAMPLE_CODE[40 + 35 * i : 120 + 35 * i],
            "max_tokens": 6 + 3 * i,
            "seed": i,
            "temperature": 0.7 if i % 2 else 0.0,
            "n": 1 + i % 3,
        }
        for i in range(8)
    ]


async def infill(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, dict]:
    async with session.post(url + "/v1/infill", json=body) as response:
        return response.status, await response.json()


async def metrics(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + "/metrics") as response:
        return await response.text()


async def wait_for_metric(session, url, name, labels, at_least, timeout=20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = await metrics(session, url)
        if metric(text, name, labels) >= at_least:
            return text
        assert time.monotonic() < deadline, f"{name}{{{labels}}} never reached {at_least}"
        await asyncio.sleep(0.05)


def answer(body: dict) -> tuple:
    return body["text"], body.get("candidates"), body["tokens"], body["steps"]


async def test_eight_concurrent_clients_get_the_serial_results(shared_engine):
    engine = shared_engine
    requests = varied_requests()
    async with aiohttp.ClientSession() as session:
        serial = [await infill(session, engine.url, r) for r in requests]
        steps_serial = metric(await metrics(session, engine.url), "mercury_batch_size_bucket", 'le="1"')
        concurrent = await asyncio.gather(*(infill(session, engine.url, r) for r in requests))
        text = await metrics(session, engine.url)
    assert all(status == 200 for status, _ in serial + list(concurrent))
    assert [answer(b) for _, b in concurrent] == [answer(b) for _, b in serial]
    total_steps = metric(text, "mercury_batch_size_count")
    single_steps = metric(text, "mercury_batch_size_bucket", 'le="1"') - steps_serial
    assert total_steps - single_steps > 0, "the concurrent requests never shared a step"


async def test_cancel_mid_flight_leaves_the_batch_and_the_others_finish(shared_engine):
    url = shared_engine.url
    others = varied_requests()[:3]
    async with aiohttp.ClientSession() as session:
        expected = [await infill(session, url, r) for r in others]
        before = await metrics(session, url)
        long_request = asyncio.create_task(infill(session, url, {**LONG, "id": "long-one"}))
        await wait_for_metric(session, url, "mercury_active_requests", "", 1)
        finished = asyncio.gather(*(infill(session, url, r) for r in others))
        await asyncio.sleep(0.1)
        async with session.post(url + "/v1/cancel", json={"id": "long-one"}) as response:
            assert (await response.json())["cancelled"] is True
        status, body = await long_request
        results = await finished
        after = await wait_for_metric(session, url, "mercury_cancellations_total", 'reason="cancel"',
                                      metric(before, "mercury_cancellations_total", 'reason="cancel"') + 1)
        steps_then = metric(after, "mercury_steps_total")
        await asyncio.sleep(0.3)
        steps_later = metric(await metrics(session, url), "mercury_steps_total")
    assert status == 499 and body["error"]["type"] == "cancelled"
    assert [answer(b) for _, b in results] == [answer(b) for _, b in expected]
    assert metric(after, "mercury_active_requests") == 0
    assert steps_later == steps_then, "the cancelled request kept the model busy"


async def test_client_disconnect_cancels_the_request(shared_engine):
    url = shared_engine.url
    async with aiohttp.ClientSession() as session:
        before = metric(await metrics(session, url), "mercury_cancellations_total", 'reason="disconnect"')
        with pytest.raises(asyncio.TimeoutError):
            await session.post(url + "/v1/infill", json=LONG, timeout=aiohttp.ClientTimeout(total=0.3))
        text = await wait_for_metric(session, url, "mercury_cancellations_total", 'reason="disconnect"', before + 1)
    assert metric(text, "mercury_active_requests") == 0


async def test_deadline_answers_504_and_cancels(shared_engine):
    url = shared_engine.url
    async with aiohttp.ClientSession() as session:
        status, body = await infill(session, url, {**LONG, "timeout_ms": 300})
        text = await metrics(session, url)
    assert status == 504
    assert body["error"]["type"] == "timeout"
    assert metric(text, "mercury_cancellations_total", 'reason="timeout"') >= 1


async def test_full_queue_answers_429_with_retry_after(start_engine):
    engine = start_engine("--max-batch", "1", "--max-queue", "1")
    engine.wait_ready()
    url = engine.url
    async with aiohttp.ClientSession() as session:
        running = asyncio.create_task(infill(session, url, {**LONG, "id": "a"}))
        await wait_for_metric(session, url, "mercury_active_requests", "", 1)
        waiting = asyncio.create_task(infill(session, url, {**LONG, "id": "b"}))
        await wait_for_metric(session, url, "mercury_queue_depth", "", 1)
        async with session.post(url + "/v1/infill", json={"prefix": "x", "max_tokens": 2}) as response:
            status, body, retry = response.status, await response.json(), response.headers.get("Retry-After")
        for request_id in ("a", "b"):
            async with session.post(url + "/v1/cancel", json={"id": request_id}) as response:
                assert (await response.json())["cancelled"] is True
        assert [(await task)[0] for task in (running, waiting)] == [499, 499]
        status_after, _ = await infill(session, url, {"prefix": "x", "max_tokens": 2})
    assert status == 429
    assert body["error"]["type"] == "rate_limit_error"
    assert retry is not None and int(retry) >= 1
    assert status_after == 200


async def test_sigterm_answers_requests_in_flight_and_exits_cleanly(start_engine):
    engine = start_engine()
    engine.wait_ready()
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(infill(session, engine.url, LONG))
        await wait_for_metric(session, engine.url, "mercury_active_requests", "", 1)
        engine.process.terminate()
        status, body = await in_flight
    assert status == 503
    assert body["error"]["message"] == "The engine is shutting down."
    assert await asyncio.to_thread(engine.process.wait, 30) == 0
    assert not engine.port_file.exists()
