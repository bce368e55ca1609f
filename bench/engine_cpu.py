"""The engine on a CPU as an editor meets it: requests through the real HTTP server after each keystroke, cold
requests at a new place, multi-line holes; the same model's autoregressive decoding beside them.

    python bench/engine_cpu.py [--model PATH] [--places 12] [--threads 2]

The server is `mercury-engine serve` in its own process; requests carry what the language server sends (the
file's header, a prefix and a suffix window, 16 tokens for a line, 64 for a block); a line is being written (its
rest is not in the suffix), a block goes in before an existing line. Cursors are
spread over a real source file (the standard library's `argparse.py`). Prints a markdown table with the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from mercury_lsp.engine.api.file_header import file_header
from mercury_lsp.engine.api.infill import SINGLE_LINE_TOKENS as LINE_TOKENS
from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.autoregressive import AutoregressiveDecoder
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import InfillEngine

from workload import SOURCE_FILE, benchmark_model, percentile, spawn_engine

PREFIX_CHARS, SUFFIX_CHARS = 1024 * 4, 256 * 4  # the language server's default windows (tokens x 4 characters)
BLOCK_TOKENS = 64  # a multi-line request (the language server's maxTokens default); a line is LINE_TOKENS
TYPED = 4  # keystrokes per place: the first request at a place is cold, the next ones are warm
TARGETS = {"warm line p50": 120, "warm line p90": 250, "cold": 300, "block": 500}  # ms, issue 11


class EngineServer:
    """`mercury-engine serve` on a free loopback port, for the length of a with-block."""

    def __init__(self, model: Path, threads: int, extra: list[str] | None = None) -> None:
        self.model, self.threads, self.extra = model, threads, extra or []

    def __enter__(self) -> EngineServer:
        self.folder = tempfile.TemporaryDirectory()
        self.process, self.url = spawn_engine(Path(self.folder.name), self.model, "--threads", str(self.threads),
                                                *self.extra)
        deadline = time.monotonic() + 120
        while self.get("/health").get("status") != "ok":
            if time.monotonic() > deadline:
                raise RuntimeError("the engine did not load its model")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.folder.cleanup()

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def cpu_ms(self) -> float:
        """CPU time the server process has run, all its threads (ns from schedstat): unlike wall time, it does not
        count the time a shared CPU spent running other people's work."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that ended meanwhile
                pass
        return total / 1e6

    def minor_faults(self) -> int:
        """Pages the server process has faulted in so far (memory handed back and touched again costs one each)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[7])  # field 10, minflt, counted after the command's name

    def infill(self, body: dict) -> tuple[float, dict]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + "/v1/infill", data, {"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        return (time.perf_counter() - started) * 1000, answer


def places(text: str, count: int) -> list[tuple[int, int]]:
    """(cursor inside a line with TYPED characters after it, the start of an empty line's indentation) pairs."""
    lines = text.splitlines(keepends=True)
    starts = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    out = []
    step = len(lines) // (count + 1)
    for k in range(count):
        i = step * (k + 1)
        while len(lines[i].strip()) < 12 or PREFIX_CHARS > starts[i]:
            i += 1
        line = lines[i]
        middle = starts[i] + (len(line) - len(line.lstrip())) + len(line.strip()) // 2
        out.append((middle, starts[i] + len(line) - len(line.lstrip())))
    return out


def body(text: str, cursor: int, max_tokens: int, single_line: bool) -> dict:
    """A single-line request is the user writing this line: what follows the cursor on it is not typed yet, so
    the suffix starts at the line's end and stays the same from keystroke to keystroke, as in an editor."""
    after = text.index("\n", cursor) if single_line else cursor
    return {"header": file_header(SOURCE_FILE.name, "python"), "prefix": text[max(0, cursor - PREFIX_CHARS) : cursor],
            "suffix": text[after : after + SUFFIX_CHARS], "max_tokens": max_tokens, "single_line": single_line}


def place_requests(text: str, middle: int, indent: int):
    """One place's requests, as (row, body): TYPED keystrokes writing a line (the first is cold), then a block."""
    for typed in range(TYPED):
        yield ("cold line" if typed == 0 else "warm line"), body(text, middle + typed, LINE_TOKENS, True)
    yield "block", body(text, indent, BLOCK_TOKENS, False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--places", type=int, default=12)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--engine-arg", action="append", default=[],
                        help="extra `mercury-engine serve` option (repeat), e.g. --engine-arg=--tail-threshold=none")
    args = parser.parse_args()
    text = SOURCE_FILE.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        folder, label = benchmark_model(args.model, Path(tmp), "small")
        rows: dict[str, list[float]] = {"cold line": [], "warm line": [], "block": [], "steps cold line": [],
                                        "steps warm line": [], "steps block": [], "tokens cold line": [],
                                        "tokens warm line": [], "tokens block": []}
        with EngineServer(folder, args.threads, args.engine_arg) as server:
            health = server.get("/health")
            for middle, indent in places(text, args.places):
                for kind, request in place_requests(text, middle, indent):
                    ms, answer = server.infill(request)
                    rows[kind].append(ms)
                    rows[f"steps {kind}"].append(answer["steps"])
                    rows[f"tokens {kind}"].append(answer["tokens"])
        # The autoregressive baseline: the same weights, the same prefix tokens, greedy, in this process.
        torch.set_num_threads(args.threads)
        loaded = load_checkpoint(folder, device="cpu")
        engine = InfillEngine(loaded)
        decoder = AutoregressiveDecoder(loaded.model, loaded.model.config.max_position_embeddings)
        ar: dict[int, list[float]] = {LINE_TOKENS: [], BLOCK_TOKENS: []}
        for middle, _ in places(text, args.places):
            request = InfillRequest(**body(text, middle, LINE_TOKENS, True))
            prompt = engine.tokenize_context(request, BLOCK_TOKENS + 1).prefix_ids
            for tokens in ar:
                result = decoder.generate(prompt, tokens)
                ar[tokens].append(result.prefill_ms + result.decode_ms)

    print(f"model: {label}, {health.get('dtype')} on {platform.processor() or platform.machine()} "
          f"({os.cpu_count()} cores, {args.threads} torch threads), {args.places} places in {SOURCE_FILE.name}, "
          f"{TYPED - 1} warm keystrokes each, through /v1/infill")
    print()
    # Tokens per step over all requests of a kind (answer tokens / steps): what each latency bought.
    print("| request | count | p50 | p90 | steps p50 (mean) | tokens per step | target |")
    print("|---|---|---|---|---|---|---|")
    table = [
        ("line after a keystroke (warm)", "warm line", f"p50 ≤ {TARGETS['warm line p50']} ms, "
         f"p90 ≤ {TARGETS['warm line p90']} ms"),
        ("line at a new place (cold)", "cold line", f"≤ {TARGETS['cold']} ms"),
        (f"block, {BLOCK_TOKENS} tokens (warm context)", "block", f"≤ {TARGETS['block']} ms"),
    ]
    for label_, key, target in table:
        values, steps, tokens = rows[key], rows[f"steps {key}"], rows[f"tokens {key}"]
        print(f"| {label_} | {len(values)} | {percentile(values, 0.5):.0f} ms | {percentile(values, 0.9):.0f} ms | "
              f"{percentile(steps, 0.5):.0f} ({statistics.mean(steps):.1f}) | {sum(tokens) / sum(steps):.2f} | "
              f"{target} |")
    for tokens, values in ar.items():
        print(f"| autoregressive, {tokens} tokens (prefill + decode, in process) | {len(values)} | "
              f"{percentile(values, 0.5):.0f} ms | {percentile(values, 0.9):.0f} ms | {tokens} | 1.00 | |")


if __name__ == "__main__":
    main()
