"""Load on a real `mercury-engine serve` process: throughput and latency at several concurrencies, batching gain,
and the HTTP overhead per request on loopback.

    python bench/engine_load.py [--model PATH] [--threads 1] [--max-tokens 32] [--context 256] [--requests 32]

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
from tokenizers import Tokenizer

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


async def infill(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    async with session.post(url + "/v1/infill", json=body) as response:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: bundled, else random weights)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="random weights' shape")
    parser.add_argument("--threads", type=int, default=1, help="engine CPU threads")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--context", type=int, default=256, help="context tokens around each hole")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--stream", action="store_true", help="also time streamed answers (first text, whole)")
    args = parser.parse_args()

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
