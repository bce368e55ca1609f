"""`mercury-lsp demo FILE:LINE:COL`: one real LSP session over stdio, from initialize to the suggestion."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from mercury_lsp.engine.cli import UsageError, parse_location, read_source, split_at_cursor
from mercury_lsp.positions import index_to_column

LANGUAGES = {
    ".py": "python", ".js": "javascript", ".ts": "typescript", ".rs": "rust", ".go": "go",
    ".c": "c", ".h": "c", ".cpp": "cpp", ".java": "java", ".rb": "ruby", ".lua": "lua",
    ".sh": "shellscript", ".md": "markdown",
}


CONTEXT_LINES = 3  # lines of the file shown above and below the cursor


class DemoClient:
    """A pygls client driving `mercury-lsp` as an editor would, remembering what the server reports."""

    def __init__(self) -> None:
        self.lsp = LanguageClient("mercury-lsp-demo", "1")
        self.statuses: list[dict[str, Any]] = []
        self.messages: list[str] = []
        self._changed = asyncio.Event()

        @self.lsp.feature("mercury/status")
        def on_status(ls: LanguageClient, params: Any) -> None:
            self.statuses.append(params if isinstance(params, dict) else params._asdict())
            self._changed.set()

        @self.lsp.feature(types.WINDOW_SHOW_MESSAGE)
        def on_message(ls: LanguageClient, params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)

        @self.lsp.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def on_progress_create(ls: LanguageClient, params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.lsp.feature(types.PROGRESS)
        def on_progress(ls: LanguageClient, params: types.ProgressParams) -> None:
            return None

    async def start(self) -> None:
        """Start `mercury-lsp` over stdio; its log goes to our stderr (an undrained pipe would stall it)."""
        await self.lsp.start_io(sys.executable, "-m", "mercury_lsp.cli", "--log-level", "ERROR")
        self._stderr = asyncio.create_task(_forward(self.lsp._server.stderr))

    async def inline(self, uri: str, line: int, character: int, automatic: bool = False,
                     status_timeout: float = 10.0) -> tuple[float, dict[str, Any], list[types.InlineCompletionItem]]:
        """One inline completion request: client-side round trip (ms), the status sent for it, the items.

        A request answered with nothing before reaching the cache or the engine sends no status: after
        `status_timeout` seconds the status says so.
        """
        seen = len(self.statuses)
        kind = types.InlineCompletionTriggerKind.Automatic if automatic else types.InlineCompletionTriggerKind.Invoked
        asked = time.perf_counter()
        answer = await self.lsp.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(trigger_kind=kind),
        ))
        round_trip_ms = (time.perf_counter() - asked) * 1000
        try:
            status = await self.next_status(seen, status_timeout)
        except asyncio.TimeoutError:
            status = {"state": "error", "message": "The server sent no status for the request."}
        items = list(answer.items) if isinstance(answer, types.InlineCompletionList) else list(answer or [])
        return round_trip_ms, status, items

    async def next_status(self, after: int, timeout: float) -> dict[str, Any]:
        """The first status notification numbered `after` or later."""
        deadline = time.monotonic() + timeout
        while len(self.statuses) <= after:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
        return self.statuses[after]

    async def until_engine_settles(self, timeout: float) -> dict[str, Any]:
        """Wait for the engine's `ready` or `error` status."""
        seen = 0
        while True:
            status = await self.next_status(seen, timeout)
            seen += 1
            if status["state"] in ("ready", "error", "disabled"):
                return status


async def _forward(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and (line := await stream.readline()):
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()


def _capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            synchronization=types.TextDocumentSyncClientCapabilities(),
        ),
    )


async def complete_once(args: argparse.Namespace, path: Path, text: str, line: int, column: int) -> dict[str, Any]:
    """Start the server, open the file, wait for the engine, ask once; return what happened."""
    settings: dict[str, Any] = {"device": args.device}
    for key, value in (("model", args.model), ("engineUrl", args.engine_url),
                       ("maxTokens", args.max_tokens), ("steps", args.steps)):
        if value is not None:
            settings[key] = value
    client = DemoClient()
    started = time.perf_counter()
    await client.start()
    try:
        await client.lsp.initialize_async(types.InitializeParams(
            capabilities=_capabilities(), initialization_options={"mercury": settings},
            root_uri=path.parent.resolve().as_uri(),
        ))
        client.lsp.initialized(types.InitializedParams())
        uri = path.resolve().as_uri()
        client.lsp.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri=uri, language_id=LANGUAGES.get(path.suffix, "plaintext"), version=1, text=text,
        )))
        engine = await client.until_engine_settles(args.wait)
        startup_s = time.perf_counter() - started
        if engine["state"] != "ready":
            return {"state": engine["state"], "message": engine.get("message") or "; ".join(client.messages)}
        # One request at the start of the line first: the server's first request pays one-time costs
        # (type converters, connections) that an editor pays once per session.
        await client.inline(uri, line, 0)
        round_trip_ms, status, items = await client.inline(uri, line, column)
        engine_ms, engine_round_trip_ms = status.get("engineMs"), status.get("engineRoundTripMs")
        return {
            "state": status["state"],
            "message": status.get("message"),
            "engine": engine.get("message"),
            "text": items[0].insert_text if items else "",
            "candidates": len(items),
            "latencyMs": round(round_trip_ms, 2),
            "engineMs": engine_ms,
            "engineRoundTripMs": engine_round_trip_ms,
            "serverOverheadMs": (round(round_trip_ms - engine_round_trip_ms, 2)
                                 if engine_round_trip_ms is not None else None),
            "tokens": status.get("tokens"),
            "steps": status.get("steps"),
            "tokensPerSecond": status.get("tokensPerSecond"),
            "startupS": round(startup_s, 2),
        }
    finally:
        if not client.lsp.stopped:
            await client.lsp.shutdown_async(None)
            client.lsp.exit(None)
        await client.lsp.stop()


def _show(report: dict[str, Any], location: str, before: str, after: str) -> None:
    """The suggestion in place between a few lines of its file, then the figures."""
    text = report["text"]
    print(f"{location}  (engine: {report['engine']}, ready after {report['startupS']} s)")
    print()
    if text:
        dim, bold, plain = ("\033[2m", "\033[1;32m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
        above = "\n".join(before.split("\n")[-CONTEXT_LINES - 1 :])
        below = "\n".join(after.split("\n")[: CONTEXT_LINES + 1])
        shown = f"{dim}{above}{plain}{bold}{text}{plain}{dim}{below}{plain}"
        for row in shown.split("\n"):
            print(f"    {row}")
    else:
        print("    (no suggestion: the model's text was empty after filtering)")
    print()
    rows = [
        ("latency", f"{report['latencyMs']:.1f} ms  (LSP request to answer, after one warm-up request)"),
        ("engine", _ms(report["engineMs"], "denoising, as the engine reports it")),
        ("engine HTTP", _ms(report["engineRoundTripMs"], "the language server's call to the engine")),
        ("server overhead", _ms(report["serverOverheadMs"], "latency minus the engine call")),
        ("tokens", str(report["tokens"])),
        ("steps", str(report["steps"])),
        ("tokens/s", str(report["tokensPerSecond"])),
    ]
    for name, value in rows:
        print(f"  {name:<16}{value}")


def _ms(value: float | None, meaning: str) -> str:
    return f"{value:.1f} ms  ({meaning})" if value is not None else "n/a"


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of `mercury-lsp demo`; exit status 0 on a completed request, 1 when the engine failed."""
    try:
        path, line, column = parse_location(args.location)
        text = read_source(path)
        before, after = split_at_cursor(text, line, column)
    except UsageError as error:
        print(f"mercury-lsp demo: {error}", file=sys.stderr)
        return 2
    line_text = text.split("\n")[line - 1]
    utf16_column = index_to_column(line_text, column - 1, "utf-16")
    try:
        report = asyncio.run(complete_once(args, path, text, line - 1, utf16_column))
    except asyncio.TimeoutError:
        print(f"mercury-lsp demo: the engine was not ready within {args.wait:.0f} s.", file=sys.stderr)
        return 1
    if report["state"] != "ready":
        hint = "" if args.model or args.engine_url else " (--model PATH names a model folder)"
        print(f"mercury-lsp demo: the engine is not ready ({report['state']}): {report['message']}{hint}",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _show(report, args.location, before, after)
    return 0
