"""A long session against the real processes, with malformed input mixed in: the language server over stdio (its
engine auto-started in a private runtime folder, so every request also passes the identity proof) and the engine
over raw HTTP. Reports messages, crashes, unanswered requests, wrong statuses and memory before and after.

    python bench/soak.py [--messages 50000] [--http 5000] [--model PATH] [--seed 0]

Without --model the engine serves a tiny random model (the soak is about the processes, not about completions).
RSS "before" is read after a warm-up (the first 5% of the traffic), "after" once the traffic has ended.
Exits non-zero when a process crashed, a request went unanswered or a status was wrong.

    python bench/soak.py --memory 1500 [--every 100] [--clients 3] [--device cpu|cuda] [--model PATH]

Memory over time instead: `mercury-engine serve` on the bundled model (or --model), fed `/v1/infill` requests of
varied shapes as editors send them (prefixes and suffixes of many lengths cut from held-out code, single lines
and 64-token blocks, several documents typed into and jumped around in, a few clients at once), with a table row
of the engine's RSS (and on CUDA its allocated/reserved device memory, from /metrics) every --every requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from mercury_lsp.engine import daemon
from mercury_lsp.engine.api.infill import SINGLE_LINE_TOKENS
from mercury_lsp.transport import Frame, FrameReader

ROOT = Path(__file__).resolve().parent.parent
URI = "file:///soak/module.py"
TEXT = "import os\n\n\ndef total(items):\n    result = 0\n    for item in items:\n        result += item\n    return \n"
FLAT_FROM = 1500  # --memory: the flatness is from 1,500 requests on


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory in MB: all of it (VmRSS), or its anonymous (RssAnon) or file-backed (RssFile) part."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def frame(payload: dict | bytes) -> bytes:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def junk(rng: random.Random) -> bytes:
    """One malformed frame of a random class, ended so that it cannot swallow the next frame."""
    kind = rng.randrange(7)
    if kind == 0:
        return frame(b"{not json" + bytes(rng.randrange(256) for _ in range(rng.randrange(20))))
    if kind == 1:
        return frame(json.dumps(rng.choice([[1, 2], "x", 3, {"id": 1}, {"jsonrpc": "1.0", "method": 5}])).encode())
    if kind == 2:
        return b"X-Long: " + b"a" * rng.randrange(70_000, 140_000) + b"\r\n\r\n"
    if kind == 3:
        return frame(b"[" * 60_000 + b"]" * 60_000)
    if kind == 4:
        return b"Content-Length: nope\r\n\r\n"
    if kind == 5:
        body = json.dumps({"jsonrpc": "2.0", "method": "x", "params": {"pad": "y" * rng.randrange(100)}}).encode()
        return b"Content-Length: %d\r\n\r\n" % (len(body) // 2) + body + b"\r\n\r\n"
    return frame(b"\xff\xfe" + bytes(rng.randrange(256) for _ in range(10)))


class LanguageServer:
    """The real `mercury-lsp` over pipes; a thread counts what it answers."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "mercury_lsp.cli"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.answered: dict[object, int] = {}
        self.parse_errors = 0
        self.engine_state = "loading"  # from the mercury/status notifications
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        frames = FrameReader()
        while chunk := self.process.stdout.read1(65536):
            for event in frames.feed(chunk):
                message = json.loads(event.body) if isinstance(event, Frame) else {}
                if message.get("method") == "mercury/status":
                    self.engine_state = message["params"]["state"]
                if "id" in message and "method" not in message:
                    with self.lock:
                        if message["id"] is None:
                            self.parse_errors += 1
                        else:
                            self.answered[message["id"]] = self.answered.get(message["id"], 0) + 1

    def send(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.engine_state != "ready":
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SystemExit(f"soak: the engine did not become ready ({self.engine_state}).")
            time.sleep(0.1)

    def wait_for(self, ids: list[object], timeout: float) -> list[object]:
        """The ids still unanswered after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                missing = [i for i in ids if i not in self.answered]
            if not missing or time.monotonic() > deadline or self.process.poll() is not None:
                return missing
            time.sleep(0.05)


def soak_language_server(args: argparse.Namespace, model: Path, runtime: Path) -> dict:
    rng = random.Random(args.seed)
    env = {**os.environ, "MERCURY_RUNTIME_DIR": str(runtime), "OMP_NUM_THREADS": "1"}
    server = LanguageServer(env)
    settings = {"model": str(model), "device": "cpu", "steps": 4, "maxTokens": 8, "debounceMs": 0}
    server.send(frame({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                       "params": {"capabilities": {}, "initializationOptions": {"mercury": settings}}}))
    server.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    server.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": URI, "languageId": "python", "version": 1, "text": TEXT}}}))
    server.send(frame({"jsonrpc": "2.0", "id": "start", "method": "textDocument/inlineCompletion", "params": {
        "textDocument": {"uri": URI}, "position": {"line": 7, "character": 11}, "context": {"triggerKind": 1}}}))
    server.wait_until_ready(120)  # the first request started the engine
    asked: list[object] = ["init", "start"]
    counts = {"messages": 4, "malformed": 0, "requests": 2, "closed": 0}
    warm = max(args.messages // 20, 1)
    before = None
    line, column, version = 7, 11, 1
    for n in range(args.messages):
        if n == warm:
            server.wait_for(list(asked), 120)
            before = rss_mb(server.process.pid)
        roll = rng.random()
        if roll < 0.01:  # another file opened, asked at and closed: nothing of it may stay (issue 21)
            uri, lines = f"file:///soak/other_{n}.py", rng.randrange(200, 2000)
            other = "".join(f"def f{n}_{i}(x):\n    return x * {i}\n" for i in range(lines))
            request_id = f"o{n}"
            data = (frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
                        "uri": uri, "languageId": "python", "version": 1, "text": other}}})
                    + frame({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion", "params": {
                        "textDocument": {"uri": uri}, "position": {"line": 2 * lines, "character": 0},
                        "context": {"triggerKind": 1}}})
                    + frame({"jsonrpc": "2.0", "method": "textDocument/didClose",
                             "params": {"textDocument": {"uri": uri}}}))
            asked.append(request_id)
            counts["requests"] += 1
            counts["closed"] += 1
        elif roll < 0.02:
            data = junk(rng)
            counts["malformed"] += 1
        elif roll < 0.04:
            request_id = f"q{n}"
            kind = rng.choice(["textDocument/inlineCompletion", "textDocument/completion"])
            params = {"textDocument": {"uri": URI}, "position": {"line": line, "character": column}}
            if kind == "textDocument/inlineCompletion":
                params["context"] = {"triggerKind": 1}
            data = frame({"jsonrpc": "2.0", "id": request_id, "method": kind, "params": params})
            asked.append(request_id)
            counts["requests"] += 1
        elif roll < 0.06:
            data = frame({"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
                          "params": {"settings": {"mercury": {**settings, "maxTokens": rng.choice([8, 12])}}}})
        else:
            version += 1
            text = rng.choice(["a", "b", "_", " ", "(", ")", "1"])
            here = {"line": line, "character": column}
            data = frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                "textDocument": {"uri": URI, "version": version},
                "contentChanges": [{"range": {"start": here, "end": here}, "text": text}]}})
            column += 1
            if column > 60:  # start a fresh line so the document stays small
                version += 1
                data += frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
                    "textDocument": {"uri": URI, "version": version},
                    "contentChanges": [{"range": {"start": {"line": line, "character": 11},
                                                  "end": {"line": line, "character": column}}, "text": ""}]}})
                column = 11
        try:
            server.send(data)
        except BrokenPipeError:
            break
        counts["messages"] += 1
    unanswered = server.wait_for(asked, 120)
    after = rss_mb(server.process.pid) if server.process.poll() is None else float("nan")
    crashed = server.process.poll() is not None
    if not crashed:
        server.send(frame({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"})
                    + frame({"jsonrpc": "2.0", "method": "exit"}))
        server.process.stdin.close()
        crashed = server.process.wait(30) != 0
    return {**counts, "crashed": crashed, "unanswered": len(unanswered), "rss_before": before, "rss_after": after,
            "parse_errors": server.parse_errors, "wrong": sum(1 for c in server.answered.values() if c != 1)}


WELL_FORMED = {"infill", "completions", "fim stream"}
HTTP_CASES = [  # (what is sent, the statuses that are right for it)
    ("infill", {200}), ("completions", {200}), ("fim stream", {200}), ("bad field", {400}), ("bad json", {400}),
    ("deep json", {400}), ("no key", {401}), ("bad http", {400}), ("unknown route", {404}), ("odd expect", {417}),
]


def http_request(case: str, rng: random.Random, key: str) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n"
    prefix = TEXT[: rng.randrange(20, len(TEXT))]
    bodies = {
        "infill": {"prefix": prefix, "max_tokens": 4, "steps": 2, "seed": rng.randrange(100)},
        "completions": {"prompt": prefix, "max_tokens": 4, "steps": 2},
        "fim stream": {"model": "m", "prompt": prefix, "max_tokens": 4, "steps": 2, "stream": True},
        "bad field": {"prefix": prefix, rng.choice(["max_tokens", "n", "seed", "timeout_ms"]): rng.choice(
            [-1, 10**30, "x", None, [1]]), "colour": 1},
    }
    path = {"completions": "/v1/completions", "fim stream": "/v1/fim/completions",
            "unknown route": "/v1/nothing"}.get(case, "/v1/infill")
    if case in bodies:
        body = json.dumps(bodies[case]).encode()
    elif case == "deep json":
        body = b"[" * 50_000 + b"]" * 50_000
    else:
        body = b'{"prefix": "x", "max_tokens": 2' + (b"" if case == "bad json" else b"}")
    if case == "bad http":
        return b"POST /v1/infill HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n"
    extra = "Expect: \x80-weird\r\n" if case == "odd expect" else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{'' if case == 'no key' else auth}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("utf-8", "surrogateescape") + body


async def soak_engine(args: argparse.Namespace, endpoint: daemon.EngineEndpoint) -> dict:
    rng = random.Random(args.seed + 1)
    host, port = endpoint.url.removeprefix("http://").rsplit(":", 1)
    counts = {"requests": 0, "malformed": 0, "wrong": 0, "unanswered": 0}
    wrong_examples: list[str] = []
    before = None
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.http):
        queue.put_nowait(n)

    async def client() -> None:
        nonlocal before
        while not queue.empty():
            n = queue.get_nowait()
            if n == args.http // 20:
                before = rss_mb(endpoint.pid)
            case, right = rng.choice(HTTP_CASES)
            counts["malformed"] += case not in WELL_FORMED
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(http_request(case, rng, endpoint.key or ""))
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(-1), 60)
                writer.close()
            except (OSError, asyncio.TimeoutError):
                answer = b""
            counts["requests"] += 1
            if not answer:
                counts["unanswered"] += 1
                continue
            status = int(answer.split(b" ", 2)[1])
            if status not in right:
                counts["wrong"] += 1
                wrong_examples.append(f"{case}: {answer[:160]!r}")

    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    alive = daemon._alive(endpoint.pid)
    return {**counts, "crashed": not alive, "rss_before": before, "rss_after": rss_mb(endpoint.pid) if alive
            else float("nan"), "examples": wrong_examples[:5]}


class VariedTraffic:
    """One client's requests: runs of keystrokes at a place (the prefix grows, the suffix stays), then a jump to
    another place of another document, with a new prefix/suffix window and canvas (a line or a block)."""

    def __init__(self, documents: list[tuple[str, str]], rng: random.Random, steps: int | None = None) -> None:
        self.documents, self.rng, self.steps = documents, rng, steps
        self.left = 0

    def _jump(self) -> None:
        rng = self.rng
        self.path, text = rng.choice(self.documents)
        self.typed = rng.randrange(4, 40)  # characters typed at this place
        self.prefix_chars = int(math.exp(rng.uniform(math.log(8), math.log(4096))))  # log-uniform, 8..4096
        self.suffix_chars = 0 if rng.random() < 0.2 else int(math.exp(rng.uniform(math.log(8), math.log(1024))))
        self.anchor = rng.randrange(min(len(text) - 1, self.typed), len(text))
        self.text = text
        self.single_line = rng.random() < 0.6
        self.left = self.typed

    def next_body(self) -> dict:
        if self.left == 0 or self.rng.random() < 0.05:
            self._jump()
        cursor = self.anchor - self.left
        self.left -= 1
        return {"prefix": self.text[max(0, cursor - self.prefix_chars) : cursor],
                "suffix": self.text[self.anchor : self.anchor + self.suffix_chars],
                "header": f"# {self.path}\n", "max_tokens": SINGLE_LINE_TOKENS if self.single_line else 64,
                "single_line": self.single_line, **({"steps": self.steps} if self.steps else {})}


def heldout_documents(count: int, seed: int) -> list[tuple[str, str]]:
    """`count` held-out source files (the bundled model never trained on them), as (path, text)."""
    from mercury_lsp.engine.training.corpus import collect_corpus

    files = [f for f in collect_corpus().heldout if 2_000 < len(f.text) < 200_000]
    random.Random(seed).shuffle(files)
    return [(f.key, f.text) for f in files[:count]]


def metric_values(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """The named gauges from the engine's /metrics (absent ones are left out)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            values[name] = float(value)
    return values


def cache_mb(url: str) -> str:
    """The prefix + suffix caches' MB, from /health's memory (what the engine holds on purpose)."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            memory = json.loads(response.read()).get("memory") or {}
    except OSError:
        return "?"
    return f"{memory['prefix_cache']['mb']:.0f} + {memory['suffix_cache']['mb']:.0f}" if memory else "?"


def soak_memory(args: argparse.Namespace) -> int:
    """Varied requests to `mercury-engine serve`; a table row of its memory every --every requests."""
    from mercury_lsp.models import BUNDLED_MODEL

    model = Path(args.model) if args.model else BUNDLED_MODEL
    documents = heldout_documents(args.documents, args.seed)
    with tempfile.TemporaryDirectory() as scratch:
        port_file = Path(scratch) / "engine.json"
        command = [sys.executable, "-m", "mercury_lsp.engine.cli", "serve", "--device", args.device, "--port", "0",
                   "--port-file", str(port_file), "--model", str(model), "--log-level", "warning", *args.engine_args]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        try:
            return _soak_memory(args, process, port_file, model, documents)
        finally:
            process.terminate()
            process.wait(30)


def _soak_memory(args: argparse.Namespace, process: subprocess.Popen, port_file: Path, model: Path,
                 documents: list[tuple[str, str]]) -> int:
    deadline = time.monotonic() + 180
    health: dict = {}
    while health.get("status") != "ok":
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"soak: the engine did not load ({health}).")
        time.sleep(0.2)
        if port_file.exists():
            url = json.loads(port_file.read_text())["url"]
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    health = json.loads(response.read())
            except OSError:
                pass
    device_gauges = ("mercury_cuda_memory_allocated_bytes", "mercury_cuda_memory_reserved_bytes")
    cuda = health.get("device", "").startswith("cuda")
    loaded = rss_mb(process.pid)
    print(f"soak --memory: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other "
          f"work), model {model.name} on {health.get('device')} ({health.get('dtype')}), {len(documents)} held-out "
          f"documents, {args.clients} clients, steps {args.steps or 'default'}, seed {args.seed}")
    print(f"health: {json.dumps({k: v for k, v in health.items() if k not in ('status', 'model')})}\n")
    print("| requests | minutes | engine RSS (MB) | × post-load | anon / file (MB) | caches (MB) |"
          + (" allocated (MB) | reserved (MB) |" if cuda else "")
          + " p50 / p90 ms (since last row) | tokens per step (since last row) | errors |")
    print("|---|---|---|---|---|---|" + ("---|---|" if cuda else "") + "---|---|---|")
    started = time.perf_counter()
    lock = threading.Lock()
    done = {"sent": 0, "count": 0, "errors": 0}
    window: list[float] = []
    bought = [0, 0]  # answer tokens and denoising steps since the last row: what the latencies bought
    rows: list[tuple[int, float]] = []  # (requests, RSS MB)

    def device_cells() -> str:
        if not cuda:
            return ""
        gauges = metric_values(url, device_gauges)
        return "".join(f" {gauges.get(name, float('nan')) / 2**20:.0f} |" for name in device_gauges)

    def row(count: int) -> None:
        rss = rss_mb(process.pid)
        rows.append((count, rss))
        device = device_cells()
        anon, files = rss_mb(process.pid, "RssAnon"), rss_mb(process.pid, "RssFile")
        times = sorted(window) or [float("nan")]
        window.clear()
        per_step = bought[0] / bought[1] if bought[1] else float("nan")
        bought[:] = [0, 0]
        print(f"| {count} | {(time.perf_counter() - started) / 60:.1f} | {rss:.0f} | {rss / loaded:.2f} | {anon:.0f} / "
              f"{files:.0f} | {cache_mb(url)} |{device} {times[len(times) // 2]:.0f} / "
              f"{times[int(len(times) * 0.9)]:.0f} | {per_step:.2f} | {done['errors']} |", flush=True)

    row(0)

    def client(index: int) -> None:
        traffic = VariedTraffic(documents, random.Random(args.seed * 1000 + index), args.steps)
        while True:
            with lock:
                if done["sent"] >= args.memory:
                    return
                done["sent"] += 1
            body = json.dumps(traffic.next_body()).encode()
            request = urllib.request.Request(url + "/v1/infill", body, {"Content-Type": "application/json"})
            sent = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    answer = json.loads(response.read())
                failed = False
            except (OSError, ValueError):  # no answer, or one that is not JSON: both are errors
                failed, answer = True, {}
            with lock:
                done["count"] += 1
                done["errors"] += failed
                bought[0] += answer.get("tokens", 0)
                bought[1] += answer.get("steps", 0)
                window.append((time.perf_counter() - sent) * 1000)
                if done["count"] % args.every == 0 or done["count"] == args.memory:
                    row(done["count"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(3)  # the engine hands a burst's memory back after 2 s without requests
    idle = rss_mb(process.pid)
    print(f"| idle 3 s | {(time.perf_counter() - started) / 60:.1f} | {idle:.0f} | {idle / loaded:.2f} | "
          f"{rss_mb(process.pid, 'RssAnon'):.0f} / {rss_mb(process.pid, 'RssFile'):.0f} | {cache_mb(url)} |"
          + device_cells() + " | | |")
    last = rows[-1][1]
    print(f"\npost-load {loaded:.0f} MB; last {last:.0f} MB ({last / loaded:.2f}×); "
          f"{done['errors']} errors; engine {'alive' if process.poll() is None else 'DIED'}")
    late = [rss for count, rss in rows if count >= FLAT_FROM]
    if len(late) > 1:  # the flatness: every row from 1,500 requests on, against the row at 1,500
        print(f"from {FLAT_FROM} requests on: {min(late):.0f}–{max(late):.0f} MB, {max(late) / late[0] - 1:+.1%} / "
              f"{min(late) / late[0] - 1:+.1%} against the row at {FLAT_FROM}; last {last / late[0] - 1:+.1%}")
    return 1 if done["errors"] or process.poll() is not None else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages to the language server")
    parser.add_argument("--http", type=int, default=5_000, help="raw HTTP requests to the engine")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP clients at once")
    parser.add_argument("--model", help="model folder (default: a tiny random model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", type=int, metavar="REQUESTS",
                        help="measure the engine's memory over this many varied requests instead")
    parser.add_argument("--every", type=int, default=100, help="--memory: a table row every N requests")
    parser.add_argument("--clients", type=int, default=3, help="--memory: clients sending at once")
    parser.add_argument("--documents", type=int, default=6, help="--memory: held-out documents to type into")
    parser.add_argument("--device", default="cpu", help="--memory: the engine's --device")
    parser.add_argument("--steps", type=int, default=4,
                        help="--memory: denoising steps per request (0: the engine's default); the shapes vary "
                             "all the same, and a shared CPU gets through more requests")
    parser.add_argument("--engine-args", nargs=argparse.REMAINDER, default=[],
                        help="--memory: the rest goes to mercury-engine serve (e.g. --max-batch 4)")
    args = parser.parse_args()
    if args.memory:
        return soak_memory(args)
    with tempfile.TemporaryDirectory() as scratch:
        if args.model:
            model = Path(args.model)
        else:
            sys.path.insert(0, str(ROOT / "tests"))
            from checkpoints import make_tiny_checkpoint

            model = make_tiny_checkpoint(Path(scratch) / "model")
        runtime = Path(scratch) / "runtime"
        os.environ["MERCURY_RUNTIME_DIR"] = str(runtime)
        started = time.perf_counter()
        try:
            lsp = soak_language_server(args, model, runtime)
            endpoint = daemon.ensure_engine(str(model), "cpu", timeout=120)  # the language server's engine
            engine = asyncio.run(soak_engine(args, endpoint))
        finally:
            daemon.stop_engine()
        minutes = (time.perf_counter() - started) / 60
    print(f"soak: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other work), "
          f"model {'tiny random' if not args.model else args.model}, seed {args.seed}, {minutes:.1f} min\n")
    print("| process | messages | of which malformed | requests | crashed | unanswered | wrong answers "
          "| RSS before | RSS after |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| language server (stdio, {lsp['closed']} other files opened and closed) | {lsp['messages']} | "
          f"{lsp['malformed']} (errors answered: "
          f"{lsp['parse_errors']}) | {lsp['requests']} | {'yes' if lsp['crashed'] else 'no'} | {lsp['unanswered']} "
          f"| {lsp['wrong']} | {lsp['rss_before']:.1f} MB | {lsp['rss_after']:.1f} MB |")
    print(f"| engine (raw HTTP) | {engine['requests']} | {engine['malformed']} | {engine['requests']} | "
          f"{'yes' if engine['crashed'] else 'no'} | {engine['unanswered']} | {engine['wrong']} | "
          f"{engine['rss_before']:.1f} MB | {engine['rss_after']:.1f} MB |")
    for example in engine["examples"]:
        print("wrong:", example)
    failed = lsp["crashed"] or lsp["unanswered"] or lsp["wrong"] or engine["crashed"] or engine["unanswered"] \
        or engine["wrong"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
