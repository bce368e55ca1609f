"""Load on a real `mercury-engine serve` process: throughput and latency at several concurrencies, batching gain,
and the HTTP overhead per request on loopback.

    python bench/engine_load.py [--model PATH] [--threads 1] [--max-tokens 32] [--context 256] [--requests 32]

With --replicas 1,2,3 it measures the README's router recipe instead: for each count, that many engines behind
nginx (`docs/router/nginx.conf`), --clients clients through it, throughput and p50/p99; then, at the largest count,
typing in several documents at once with and without the document header the router hashes on (affinity keeps a
document's prefix cache on one replica).

With --stream it also measures streaming (`stream: true` on /v1/completions, one request at a time): how long until
the first settled text arrives, against the whole answer.

Holes are cut from a real source file (the standard library's `argparse.py`), 3/4 of the context before the cursor
and 1/4 after, each request with its own seed, greedy. Without a bundled model or --model it builds random weights
(`--shape tiny`: the test model, overhead-bound; `small`: d 512 x 8 layers as in DESIGN.md), so the figures are about
speed only.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from nginx_router import NginxRouter
from tokenizers import Tokenizer

from mercury_lsp.engine_client import AFFINITY_HEADER, affinity_key

from workload import SHAPES, SOURCE_FILE, benchmark_model, holes, percentile, spawn_engine

CONCURRENCY = (1, 4, 16)


class Server:
    """A real engine process on an ephemeral port."""

    def __init__(self, folder: Path, model: Path, threads: int, max_batch: int) -> None:
        self.process, self.url = spawn_engine(folder, model, "--threads", str(threads), "--max-batch", str(max_batch),
                                              "--max-queue", "256")

    async def wait_ready(self, session: aiohttp.ClientSession) -> dict:
        while True:
            async with session.get(self.url + "/health") as response:
                health = await response.json()
            if health["status"] not in ("loading", "warming"):
                if health["status"] != "ok":
                    raise SystemExit(f"engine_load: {health.get('message')}")
                return health
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


async def infill(session: aiohttp.ClientSession, url: str, body: dict,
                 headers: dict[str, str] | None = None) -> tuple[float, dict]:
    started = time.perf_counter()
    async with session.post(url + "/v1/infill", json=body, headers=headers) as response:
        payload = await response.json()
        if response.status != 200:
            raise SystemExit(f"engine_load: request failed: {payload}")
    return (time.perf_counter() - started) * 1000, payload


async def run_level(session: aiohttp.ClientSession, url: str, bodies: list[dict], concurrency: int) -> dict:
    """Send `bodies` with `concurrency` clients, each sending its next request when the previous one answers."""
    pending = list(bodies)
    results: list[tuple[float, dict]] = []

    async def client() -> None:
        while pending:
            results.append(await infill(session, url, pending.pop()))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies = [ms for ms, _ in results]
    tokens = sum(body["tokens"] for _, body in results)
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "tokens_per_s": tokens / wall,
        "requests_per_s": len(results) / wall,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "overhead": [ms - body["ms"] for ms, body in results],
    }


async def stream_timings(session: aiohttp.ClientSession, url: str, bodies: list[dict]) -> dict:
    """Per streamed request: ms to the first chunk with text, and ms to `data: [DONE]`."""
    first, done = [], []
    for body in bodies:
        request = {"prompt": body["prefix"], "suffix": body["suffix"], "max_tokens": body["max_tokens"],
                   "seed": body["seed"], "stream": True}
        started = time.perf_counter()
        seen_text = None
        async with session.post(url + "/v1/completions", json=request) as response:
            async for line in response.content:
                data = line.decode().removeprefix("data: ").strip()
                if not data or data == "[DONE]":
                    continue
                if seen_text is None and json.loads(data)["choices"][0]["text"]:
                    seen_text = (time.perf_counter() - started) * 1000
        done.append((time.perf_counter() - started) * 1000)
        first.append(seen_text if seen_text is not None else done[-1])
    return {"first": first, "done": done}


async def health_round_trip(session: aiohttp.ClientSession, url: str, count: int = 200) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        async with session.get(url + "/health") as response:
            await response.read()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def measure(server: Server, cases: list[tuple[str, str]], args: argparse.Namespace) -> tuple[dict, list]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        health = await server.wait_ready(session)
        bodies = [{"prefix": p, "suffix": s, "max_tokens": args.max_tokens, "seed": i}
                  for i, (p, s) in enumerate(cases)]
        for body in bodies[:3]:  # warm-up: first-call allocations, prefix cache
            await infill(session, server.url, body)
        health["round_trip"] = await health_round_trip(session, server.url)
        levels = []
        for concurrency in CONCURRENCY:
            levels.append(await run_level(session, server.url, bodies[: max(args.requests, 2 * concurrency)],
                                          concurrency))
        if args.stream:
            health["stream"] = await stream_timings(session, server.url, bodies[: args.requests])
    return health, levels


async def typing_latencies(session: aiohttp.ClientSession, url: str, cases: list[tuple[str, str]],
                           keystrokes: int, max_tokens: int, affinity: bool) -> list[float]:
    """One client per document, each typing `keystrokes` characters of its hole, a request per keystroke; with
    `affinity` each request carries the document header the language server sends."""
    latencies: list[float] = []

    async def typist(index: int, prefix: str, suffix: str) -> None:
        headers = {AFFINITY_HEADER: affinity_key(f"file:///doc{index}.py")} if affinity else None
        for typed in range(keystrokes):
            body = {"prefix": prefix + suffix[:typed], "suffix": suffix[typed:], "max_tokens": max_tokens,
                    "seed": index}
            latencies.append((await infill(session, url, body, headers))[0])

    await asyncio.gather(*(typist(i, p, s) for i, (p, s) in enumerate(cases)))
    return latencies


async def measure_router(servers: list[Server], router: NginxRouter, cases: list[tuple[str, str]],
                         args: argparse.Namespace, with_typing: bool) -> dict:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for server in servers:
            await server.wait_ready(session)
        bodies = [{"prefix": p, "suffix": s, "max_tokens": args.max_tokens, "seed": i}
                  for i, (p, s) in enumerate(cases)]
        for body in bodies[: 3 * len(servers)]:
            await infill(session, router.url, body)
        figures = {"level": await run_level(session, router.url, bodies, args.clients)}
        if with_typing:
            documents = cases[: args.documents]
            for affinity in (False, True, False):  # repeated: the first pass also warms what it can
                figures[affinity] = await typing_latencies(session, router.url, documents, args.keystrokes,
                                                           args.max_tokens, affinity)
    return figures


def router_main(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.replicas.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, label = benchmark_model(args.model, Path(tmp), args.shape)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cases = holes(SOURCE_FILE.read_text(), lambda t: len(tokenizer.encode(t).ids), args.context, args.requests)
        for count in counts:
            servers = []
            router = None
            try:
                for n in range(count):
                    replica = Path(tmp) / f"r{count}-{n}"
                    replica.mkdir()
                    servers.append(Server(replica, folder, args.threads, max_batch=args.clients))
                router_folder = Path(tmp) / f"router{count}"
                router_folder.mkdir()
                router = NginxRouter(router_folder, [server.url for server in servers])
                figures = asyncio.run(measure_router(servers, router, cases, args, count == max(counts)))
            finally:
                if router is not None:
                    router.stop()
                for server in servers:
                    server.stop()
            rows.append((count, figures))

    print(f"model: {label}, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), each replica "
          f"{args.threads} CPU thread(s), nginx least_conn, {args.clients} clients, {args.requests} requests, "
          f"context ~{args.context} tokens, {args.max_tokens}-token holes")
    print()
    print("| replicas | tokens/s | requests/s | p50 latency | p99 latency |")
    print("|---|---|---|---|---|")
    for count, figures in rows:
        level = figures["level"]
        print(f"| {count} | {level['tokens_per_s']:.1f} | {level['requests_per_s']:.2f} | {level['p50']:.0f} ms | "
              f"{level['p99']:.0f} ms |")
    count, figures = rows[-1]
    print()
    print(f"typing through the router ({count} replicas): {args.documents} documents at once, {args.keystrokes} "
          "keystrokes each, a request per keystroke")
    print()
    print("| document header (affinity) | requests | p50 latency | p99 latency |")
    print("|---|---|---|---|")
    for affinity in (False, True):
        latencies = figures[affinity]
        print(f"| {'yes' if affinity else 'no'} | {len(latencies)} | {percentile(latencies, 0.5):.0f} ms | "
              f"{percentile(latencies, 0.99):.0f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: bundled, else random weights)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="random weights' shape")
    parser.add_argument("--threads", type=int, default=1, help="engine CPU threads")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--context", type=int, default=256, help="context tokens around each hole")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--stream", action="store_true", help="also time streamed answers (first text, whole)")
    parser.add_argument("--replicas", help="router mode: replica counts behind nginx, for example 1,2,3")
    parser.add_argument("--clients", type=int, default=16, help="router mode: concurrent clients")
    parser.add_argument("--documents", type=int, default=12, help="router mode: documents typed in at once")
    parser.add_argument("--keystrokes", type=int, default=6, help="router mode: keystrokes per document")
    args = parser.parse_args()
    if args.replicas:
        router_main(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder, label = benchmark_model(args.model, Path(tmp), args.shape)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cases = holes(SOURCE_FILE.read_text(), lambda t: len(tokenizer.encode(t).ids), args.context, args.requests)
        server = Server(Path(tmp), folder, args.threads, max_batch=max(CONCURRENCY))
        try:
            health, levels = asyncio.run(measure(server, cases, args))
        finally:
            server.stop()

    print(f"model: {label}, engine CPU threads: {args.threads}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, context ~{args.context} tokens, "
          f"{args.max_tokens}-token holes, max batch {max(CONCURRENCY)}")
    print()
    print("| concurrency | requests | tokens/s | requests/s | p50 latency | p99 latency |")
    print("|---|---|---|---|---|---|")
    for level in levels:
        print(f"| {level['concurrency']} | {level['requests']} | {level['tokens_per_s']:.1f} | "
              f"{level['requests_per_s']:.2f} | {level['p50']:.0f} ms | {level['p99']:.0f} ms |")
    gain = levels[-1]["tokens_per_s"] / levels[0]["tokens_per_s"]
    print()
    print(f"batching gain (tokens/s at {CONCURRENCY[-1]} / at {CONCURRENCY[0]}): {gain:.2f}x")
    single = levels[0]["overhead"]
    print(f"HTTP overhead per request on loopback: /health round trip p50 "
          f"{statistics.median(health['round_trip']):.2f} ms (p99 {percentile(health['round_trip'], 0.99):.2f} ms); "
          f"infill wall time minus engine-reported ms at concurrency 1: p50 {statistics.median(single):.2f} ms "
          f"(min {min(single):.2f} ms)")
    if args.stream:
        timing = health["stream"]
        print(f"streaming (/v1/completions, one at a time, {len(timing['done'])} requests): first text after "
              f"p50 {statistics.median(timing['first']):.0f} ms, the whole answer after p50 "
              f"{statistics.median(timing['done']):.0f} ms")


if __name__ == "__main__":
    main()
