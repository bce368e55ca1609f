"""Streaming from a real engine process: server-sent events in OpenAI's chunk shape, the settled left part of the
canvas as it grows, stop strings, usage, `[DONE]`, and a disconnect that cancels the work (seen in /metrics)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from checkpoints import SAMPLE_CODE
from engine_process import metric

# One token committed per step: on the tiny test model this canvas settles from the left in several pieces.
GROWING = {"prompt": SAMPLE_CODE[:250], "suffix": SAMPLE_CODE[250:310], "max_tokens": 24, "steps": 24,
           "threshold": 1.0, "seed": 1, "stop": None}
LONG = {"prompt": SAMPLE_CODE * 6, "max_tokens": 256, "steps": 1024, "threshold": 1.0, "stream": True}
ROUTES = ["/v1/completions", "/v1/fim/completions"]


async def stream(url: str, path: str, body: dict) -> list[dict | str]:
    """Every event's data, parsed (the final "[DONE]" stays a string); fails on anything that is not an event."""
    events: list[dict | str] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(url + path, json={**body, "stream": True}) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            raw = (await response.read()).decode()
    assert raw.endswith("\n\n")
    for block in raw.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


async def whole(url: str, path: str, body: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(url + path, json=body) as response:
            assert response.status == 200
            return await response.json()


@pytest.mark.parametrize("path", ROUTES)
async def test_the_settled_left_part_streams_as_it_grows(shared_engine, path):
    events = await stream(shared_engine.url, path, GROWING)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "text_completion" for c in chunks)
    assert all(len(c["choices"]) == 1 and c["choices"][0]["index"] == 0 for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks][:-1] == [None] * (len(chunks) - 1)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    pieces = [c["choices"][0]["text"] for c in chunks]
    expected = (await whole(shared_engine.url, path, GROWING))["choices"][0]["text"]
    assert "".join(pieces) == expected, "the pieces add up to the answer a plain request gets"
    assert len([p for p in pieces[:-1] if p]) >= 2, f"settled text arrived before the end: {pieces}"


async def test_usage_comes_last_when_asked_for(shared_engine):
    events = await stream(shared_engine.url, "/v1/fim/completions",
                          {**GROWING, "stream_options": {"include_usage": True}})
    *chunks, usage, done = events
    assert done == "[DONE]"
    assert all(c["usage"] is None for c in chunks)
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] > 0
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"]


async def test_a_stop_string_ends_the_stream_where_a_plain_answer_ends(shared_engine):
    text = (await whole(shared_engine.url, "/v1/completions", GROWING))["choices"][0]["text"]
    stop = text[3:5]
    body = {**GROWING, "stop": [stop]}
    events = await stream(shared_engine.url, "/v1/completions", body)
    pieces = [c["choices"][0]["text"] for c in events[:-1]]
    assert "".join(pieces) == text[: text.find(stop)]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_each_candidate_streams_under_its_index(shared_engine):
    body = {**GROWING, "n": 2}
    events = await stream(shared_engine.url, "/v1/completions", body)
    plain = await whole(shared_engine.url, "/v1/completions", body)
    for index in (0, 1):
        mine = [c["choices"][0] for c in events[:-1] if c["choices"][0]["index"] == index]
        assert "".join(c["text"] for c in mine) == plain["choices"][index]["text"]
        assert mine[-1]["finish_reason"] is not None


async def test_a_disconnect_mid_stream_cancels_at_the_next_step(shared_engine):
    async with aiohttp.ClientSession() as watcher:
        async def metrics() -> str:
            async with watcher.get(shared_engine.url + "/metrics") as response:
                return await response.text()

        before = metric(await metrics(), "mercury_cancellations_total", 'reason="disconnect"')
        client = aiohttp.ClientSession()
        response = await client.post(shared_engine.url + "/v1/completions", json=LONG)
        assert response.status == 200  # the stream began: the request is in the batch
        deadline = time.monotonic() + 20
        while metric(await metrics(), "mercury_active_requests") < 1:
            assert time.monotonic() < deadline, "the long request never became active"
            await asyncio.sleep(0.02)
        response.close()
        await client.close()
        while True:
            text = await metrics()
            if metric(text, "mercury_cancellations_total", 'reason="disconnect"') >= before + 1:
                break
            assert time.monotonic() < deadline, "the disconnect did not cancel the request"
            await asyncio.sleep(0.05)
        while metric(await metrics(), "mercury_active_requests") > 0:
            assert time.monotonic() < deadline, "the cancelled request stayed in the batch"
            await asyncio.sleep(0.05)
        assert metric(text, "mercury_requests_total", 'endpoint="/v1/completions",status="499"') >= 1


async def test_deadlines_answer_in_time_and_leave_no_unretrieved_future(start_engine):
    engine = start_engine()
    engine.wait_ready()
    async with aiohttp.ClientSession() as session:
        async with session.post(engine.url + "/v1/infill",
                                json={**{k: v for k, v in LONG.items() if k not in ("prompt", "stream")},
                                      "prefix": LONG["prompt"], "timeout_ms": 300}) as response:
            assert response.status == 504
            assert (await response.json())["error"]["type"] == "timeout"
        async with session.post(engine.url + "/v1/completions", json={**LONG, "timeout_ms": 300}) as response:
            events = (await response.read()).decode()
        last = events.strip().split("\n\n")[-1]
        assert json.loads(last.removeprefix("data: "))["error"]["type"] == "timeout"
        async with session.post(engine.url + "/v1/infill", json={"prefix": "x = ", "max_tokens": 4}) as response:
            assert response.status == 200  # the engine serves on after its deadlines
    engine.stop()
    log = engine.log_text()
    assert "never retrieved" not in log
    assert "Traceback" not in log
