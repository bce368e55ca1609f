"""The README's router recipe (nginx from its Debian package, `docs/router/nginx.conf`) in front of three real
engine processes that want the team's key: requests spread, each field arrives as sent, a document stays on one
replica, a killed replica is routed around, and streaming and cancellation pass through."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine_client import AFFINITY_HEADER, EngineClient, affinity_key

from checkpoints import SAMPLE_CODE
from engine_process import EngineProcess, metric
from standins import KEY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from nginx_router import NginxRouter, nginx_binary  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY}"}
ANSWERED = 'endpoint="/v1/infill",status="200"'
LONG = {"prefix": SAMPLE_CODE * 6, "max_tokens": 256, "steps": 1024, "threshold": 1.0}


def request(i: int) -> InfillRequest:
    return InfillRequest(prefix=SAMPLE_CODE[: 60 + 20 * i], suffix=SAMPLE_CODE[60 + 20 * i : 160 + 20 * i],
                         header="# pkg/calc.py\n", extra_context="# pkg/util.py\ndef helper():\n    pass\n",
                         max_tokens=8, seed=i)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            tiny_checkpoint: Path) -> Iterator[tuple[NginxRouter, list[EngineProcess]]]:
    """One router and three replicas for the module (the last test kills one)."""
    if nginx_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed: the router recipe needs it (apt-get install nginx-light).")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    engines = [EngineProcess(tmp_path_factory.mktemp("replica"), tiny_checkpoint, [], env={"MERCURY_API_KEY": KEY})
               for _ in range(3)]
    router = None
    try:
        for engine in engines:
            engine.wait_ready()
        router = NginxRouter(tmp_path_factory.mktemp("router"), [engine.url for engine in engines])
        yield router, engines
    finally:
        if router is not None:
            router.stop()
        for engine in engines:
            engine.stop()


async def answered(session: aiohttp.ClientSession, engines: list[EngineProcess]) -> list[float]:
    counts = []
    for engine in engines:
        async with session.get(engine.url + "/metrics", headers=AUTH) as response:
            counts.append(metric(await response.text(), "mercury_requests_total", ANSWERED))
    return counts


async def ask(client: EngineClient, requests: list[InfillRequest], document: str | None = None) -> list[tuple]:
    results = await asyncio.gather(*(client.infill(r, document=document) for r in requests))
    return [(r.texts, [(s.start, s.end) for s in r.completions[0].spans]) for r in results]


async def test_requests_spread_and_arrive_intact(cluster):
    router, engines = cluster
    requests = [request(i) for i in range(9)]
    through_router = EngineClient(router.url, "mercury", KEY)
    direct = EngineClient(engines[0].url, "mercury", KEY)
    async with aiohttp.ClientSession() as session:
        try:
            routed = await ask(through_router, requests)  # nine at once, no document: the least busy replica
            counts = await answered(session, engines)
            # Every field (header, extra context, suffix, seed) reached a replica as sent: the answers are those
            # of the same requests sent straight to one engine.
            assert routed == await ask(direct, requests)
        finally:
            await through_router.close()
            await direct.close()
    assert sum(counts) == 9 and sum(1 for c in counts if c) >= 2, f"one replica took everything: {counts}"


async def test_a_document_stays_on_one_replica(cluster):
    router, engines = cluster
    client = EngineClient(router.url, "mercury", KEY)
    async with aiohttp.ClientSession() as session:
        try:
            placed = []
            for document in ("file:///a.py", "file:///b.py", "file:///c.py", "file:///d.py"):
                before = await answered(session, engines)
                for i in range(3):  # one at a time, as a user types: least-busy would be free to alternate
                    await client.infill(request(i), document=document)
                after = await answered(session, engines)
                placed.append([b - a for a, b in zip(before, after)])
        finally:
            await client.close()
    assert all(sorted(moved) == [0, 0, 3] for moved in placed), placed


async def test_streaming_and_the_key_pass_through(cluster):
    router, engines = cluster
    body = {"prompt": SAMPLE_CODE[:200], "suffix": SAMPLE_CODE[200:300], "max_tokens": 24, "steps": 24, "seed": 5}
    async with aiohttp.ClientSession() as session:
        async with session.post(router.url + "/v1/completions", json=body, headers=AUTH) as response:
            whole = (await response.json())["choices"][0]["text"]
        async with session.post(router.url + "/v1/completions", json={**body, "stream": True},
                                headers=AUTH) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = [line.decode().strip() async for line in response.content if line.strip()]
        async with session.post(router.url + "/v1/completions", json=body) as refused:
            assert refused.status == 401
    assert events[-1] == "data: [DONE]" and len(events) > 2, "the answer came as several events"
    assert "".join(json.loads(e.removeprefix("data: "))["choices"][0]["text"] for e in events[:-1]
                   if json.loads(e.removeprefix("data: "))["choices"]) == whole


async def test_a_client_hanging_up_cancels_the_replicas_work(cluster):
    router, engines = cluster
    headers = AUTH | {AFFINITY_HEADER: affinity_key("file:///long.py")}
    async with aiohttp.ClientSession() as session:
        before = []
        for engine in engines:
            async with session.get(engine.url + "/metrics", headers=AUTH) as response:
                before.append(metric(await response.text(), "mercury_cancellations_total", 'reason="disconnect"'))
        with pytest.raises(asyncio.TimeoutError):
            await session.post(router.url + "/v1/infill", json=LONG, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=0.5))
        for _ in range(200):
            after = []
            for engine in engines:
                async with session.get(engine.url + "/metrics", headers=AUTH) as response:
                    text = await response.text()
                after.append((metric(text, "mercury_cancellations_total", 'reason="disconnect"'),
                              metric(text, "mercury_active_requests")))
            if sum(c for c, _ in after) > sum(before):
                break
            await asyncio.sleep(0.05)
    assert sum(c for c, _ in after) == sum(before) + 1, "the replica saw the client leave"
    assert all(active == 0 for _, active in after)


async def test_a_killed_replica_is_routed_around(cluster):
    router, engines = cluster  # last in the module: the replica stays dead
    engines[1].process.kill()
    engines[1].process.wait()
    client = EngineClient(router.url, "mercury", KEY)
    try:
        spread = await ask(client, [request(i) for i in range(6)])
        documents = [await client.infill(request(0), document=f"file:///{n}.py") for n in range(6)]
    finally:
        await client.close()
    assert len(spread) == 6 and all(texts for texts, _ in spread)
    assert all(result.texts for result in documents), "every document found a live replica"
