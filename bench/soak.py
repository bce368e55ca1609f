"""A long session against the real processes, with malformed input mixed in: the language server over stdio (its
engine auto-started in a private runtime folder, so every request also passes the identity proof) and the engine
over raw HTTP. Reports messages, crashes, unanswered requests, wrong statuses and memory before and after.

    python bench/soak.py [--messages 50000] [--http 5000] [--model PATH] [--seed 0]

Without --model the engine serves a tiny random model (the soak is about the processes, not about completions).
RSS "before" is read after a warm-up (the first 5% of the traffic), "after" once the traffic has ended.
Exits non-zero when a process crashed, a request went unanswered or a status was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mercury_lsp.engine import daemon
from mercury_lsp.transport import Frame, FrameReader

ROOT = Path(__file__).resolve().parent.parent
URI = "file:///soak/module.py"
TEXT = "import os\n\n\ndef total(items):\n    result = 0\n    for item in items:\n        result += item\n    return \n"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
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
    counts = {"messages": 4, "malformed": 0, "requests": 2}
    warm = max(args.messages // 20, 1)
    before = None
    line, column, version = 7, 11, 1
    for n in range(args.messages):
        if n == warm:
            server.wait_for(list(asked), 120)
            before = rss_mb(server.process.pid)
        roll = rng.random()
        if roll < 0.02:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000, help="messages to the language server")
    parser.add_argument("--http", type=int, default=5_000, help="raw HTTP requests to the engine")
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP clients at once")
    parser.add_argument("--model", help="model folder (default: a tiny random model)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
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
    print(f"| language server (stdio) | {lsp['messages']} | {lsp['malformed']} (errors answered: "
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
