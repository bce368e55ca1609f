"""The language server's own latency: its overhead over the engine, keystroke-to-suggestion, cache hits.

    python bench/lsp_latency.py [--model PATH] [--requests 60] [--max-tokens 16] [--steps 8]

Drives the real `mercury-lsp` process over stdio with a pygls client; the server auto-starts the
real engine (private runtime folder) on the bundled model, or with no bundled model and no --model,
on a tiny random checkpoint (tests/checkpoints.py), which makes the engine's share small and the
server's share visible. The document is the standard library's `argparse.py`, and the cursor works
down it a line at a time; each request edits the file first so that no answer comes from the cache
unless measured as such. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import argparse as _argparse_module
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from lsprotocol import types

from mercury_lsp.demo import DemoClient
from mercury_lsp.engine import daemon
from mercury_lsp.models import BUNDLED_MODEL

from workload import percentile

URI = Path(_argparse_module.__file__).resolve().as_uri()


def tiny_model_folder(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from checkpoints import make_tiny_checkpoint

    return make_tiny_checkpoint(folder)


class Bench:
    """One server session and the helpers to time requests against it."""

    def __init__(self, client: DemoClient, lines: list[str]) -> None:
        self.client = client
        self.lines = lines
        self.version = 1

    def insert(self, line: int, character: int, text: str) -> None:
        self.version += 1
        here = types.Position(line=line, character=character)
        self.client.lsp.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=here, end=here), text=text)],
        ))
        row = self.lines[line]
        self.lines[line] = row[:character] + text + row[character:]

    async def inline(self, line: int, character: int, automatic: bool) -> tuple[float, dict[str, Any], int]:
        """Client-side round trip (ms), the status the server sent for it, and the number of items."""
        round_trip, status, items = await self.client.inline(URI, line, character, automatic)
        return round_trip, status, len(items)

    def cursors(self, count: int, first_line: int) -> list[int]:
        """The next `count` lines of code from `first_line` on: a user working down a file."""
        return [i for i, row in enumerate(self.lines) if i >= first_line and row.strip()][:count]


async def measure(args: argparse.Namespace, model: str, runtime: Path) -> list[tuple[str, list[float]]]:
    text = Path(_argparse_module.__file__).read_text()
    client = DemoClient()
    settings = {"model": model, "device": "cpu", "maxTokens": args.max_tokens, "steps": args.steps}
    os.environ["MERCURY_RUNTIME_DIR"] = str(runtime)
    await client.start()
    try:
        await client.lsp.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities())),
            initialization_options={"mercury": settings},
        ))
        client.lsp.initialized(types.InitializedParams())
        client.lsp.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=URI, language_id="python", version=1, text=text)))
        ready = await client.until_engine_settles(300)
        if ready["state"] != "ready":
            raise SystemExit(f"lsp_latency: the engine is {ready['state']}: {ready.get('message')}")
        bench = Bench(client, text.split("\n"))
        rows = await _rows(bench, args.requests)
        rows.insert(5, ("engine HTTP server alone (direct /v1/infill round trip - engine time)",
                        await _direct_engine_overhead(text, args)))
        return rows
    finally:
        await client.lsp.shutdown_async(None)
        client.lsp.exit(None)
        await client.lsp.stop()


async def _rows(bench: Bench, requests: int) -> list[tuple[str, list[float]]]:
    round_trips, engine, engine_http, overheads, own, keystroke, cached = [], [], [], [], [], [], []
    for line in bench.cursors(3, 600):  # warm-up: connections, type converters, the engine's first steps
        await bench.inline(line, len(bench.lines[line]), automatic=False)
    for line in bench.cursors(requests, 1000):
        bench.insert(0, 0, "#")  # a fresh context: no cache hit
        end = len(bench.lines[line])
        round_trip, status, _ = await bench.inline(line, end, automatic=False)
        if status.get("engineMs") is None:
            continue
        round_trips.append(round_trip)
        engine.append(status["engineMs"])
        engine_http.append(status["engineRoundTripMs"])
        overheads.append(round_trip - status["engineMs"])
        own.append(round_trip - status["engineRoundTripMs"])
    for line in bench.cursors(requests, 1600):
        # A keystroke as an editor sends it: the change, then an automatic request (debounced).
        end = len(bench.lines[line])
        started = time.perf_counter()
        bench.insert(line, end, " ")
        _, status, items = await bench.inline(line, end + 1, automatic=True)
        if status.get("source") == "engine":
            keystroke.append((time.perf_counter() - started) * 1000)
        if items:
            shown = await bench.inline(line, end + 1, automatic=True)  # same cursor: a cache hit
            cached.append(shown[0])
    return [
        ("LSP round trip, explicit request", round_trips),
        ("engine time (reported by the engine)", engine),
        ("engine HTTP round trip (seen by the language server)", engine_http),
        ("**overhead over the engine** (LSP round trip - engine time)", overheads),
        ("**language server's own** (LSP round trip - engine HTTP round trip)", own),
        ("keystroke to suggestion (change + automatic request, 75 ms debounce)", keystroke),
        ("cache hit (same cursor again)", cached),
    ]


async def _direct_engine_overhead(text: str, args: argparse.Namespace) -> list[float]:
    """The same kind of request sent straight to the engine: what the engine adds outside its own ms."""
    info, key = daemon.read_port_file(), daemon.read_secret()
    overheads = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"} if key else {}) as http:
        for k in range(args.requests):
            cut = len(text) // 4 + k * 997
            body = {"prefix": text[cut - 4000 : cut], "suffix": text[cut : cut + 1000],
                    "max_tokens": args.max_tokens, "steps": args.steps}
            started = time.perf_counter()
            async with http.post(info["url"] + "/v1/infill", json=body) as response:
                answer = await response.json()
            overheads.append((time.perf_counter() - started) * 1000 - answer["ms"])
    return overheads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: the bundled model, else a tiny random one)")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.model:
            model, label = args.model, Path(args.model).name
        elif (BUNDLED_MODEL / "config.json").exists():
            model, label = str(BUNDLED_MODEL), "bundled"
        else:
            model, label = str(tiny_model_folder(Path(scratch) / "tiny")), "tiny random (d 32, 2 layers)"
        runtime = Path(scratch) / "runtime"
        try:
            rows = asyncio.run(measure(args, model, runtime))
        finally:
            daemon.stop_engine()
    print(f"lsp_latency: model {label}, CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), "
          f"{args.requests} requests, max_tokens {args.max_tokens}, steps {args.steps}, context argparse.py\n")
    print("| measure | n | p50 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    for name, values in rows:
        if values:
            print(f"| {name} | {len(values)} | {percentile(values, 0.5):.2f} | {percentile(values, 0.99):.2f} "
                  f"| {statistics.fmean(values):.2f} |")
        else:
            print(f"| {name} | 0 | - | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
