"""A user types code the model never saw through the real language server: how often a suggestion shows, how often
it is what comes next, how much typing it saves, how long it takes.

    python bench/typing_replay.py [--functions 24] [--seed 0] [--engine-url URL | --model PATH]
                                  [--min-confidence 0 0.2 0.4] [--max-lines 0 1] [--out DIR]

Functions come from the held-out side of the corpus split (engine/training/corpus.py, the rule the bundled model's
evaluation uses): each is cut out of its file, and a typist writes it back into the gap, one keystroke per
didChange (Enter brings the next line's indentation, as editors do). It pauses after each word and at each line
start, where the editor asks for an inline completion with the Automatic trigger. A shown suggestion that is
exactly what comes next is accepted whole; otherwise the typist accepts it word by word as far as it is right
(VS Code's "accept next word"), at least one whole word, or types on. Right after an accept the editor asks
again at the new cursor.

Prints one table row per setting combination (shown rate, acceptance of shown suggestions exact and word by
word, characters saved by full accepts and by all accepts, latency p50/p90 of engine answers) and writes
`typing_replay.md`, `typing_replay_latency.png` and `typing_replay_min_confidence.png` under --out. Needs
matplotlib (a bench/test extra). The engine is auto-started in a private runtime folder on the bundled model,
or --engine-url names one.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types

from mercury_lsp.demo import DemoClient
from mercury_lsp.engine import daemon
from mercury_lsp.engine.training.corpus import collect_corpus
from mercury_lsp.engine.training.evaluate import parses
from mercury_lsp.models import BUNDLED_MODEL
from mercury_lsp.positions import index_to_column

from workload import percentile

MIN_LINES, MAX_LINES = 3, 16
MAX_CHARS = 500  # a function longer than this costs minutes of replay on two cores
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Task:
    """A function to type: where it was cut from, the file without it, and its text."""

    key: str
    document: str  # the file with the function cut out
    at: int  # where the function goes back
    target: str


@dataclass
class Pause:
    """One request at a pause, and what the typist did with the answer."""

    shown: bool
    exact: bool
    accepted_chars: int
    source: str | None
    latency_ms: float


@dataclass
class Replay:
    """All the pauses of one run and the characters typed in it."""

    min_confidence: float
    max_lines: str
    pauses: list[Pause] = field(default_factory=list)
    chars: int = 0

    @property
    def label(self) -> str:
        return f"minConfidence {self.min_confidence:g}, maxLines {self.max_lines}"

    def row(self) -> dict[str, float]:
        shown = [p for p in self.pauses if p.shown]
        exact = [p for p in shown if p.exact]
        words = [p for p in shown if p.accepted_chars]
        engine_ms = [p.latency_ms for p in self.pauses if p.source == "engine"]
        return {
            "pauses": len(self.pauses),
            "shown": len(shown) / max(1, len(self.pauses)),
            "exact": len(exact) / max(1, len(shown)),
            "word": len(words) / max(1, len(shown)),
            "saved_full": sum(p.accepted_chars for p in exact) / max(1, self.chars),
            "saved_all": sum(p.accepted_chars for p in words) / max(1, self.chars),
            "p50": percentile(engine_ms, 0.5) if engine_ms else float("nan"),
            "p90": percentile(engine_ms, 0.9) if engine_ms else float("nan"),
            "engine_requests": len(engine_ms),
        }


def heldout_tasks(count: int, seed: int, roots: list[Path] | None) -> list[Task]:
    """`count` functions (seeded) from held-out files that parse, at most one per file."""
    files = [f for f in collect_corpus(roots).heldout if parses(f.text)]
    rng = random.Random(seed)
    rng.shuffle(files)
    tasks = []
    for source in files:
        lines = source.text.split("\n")
        functions = [node for node in ast.walk(ast.parse(source.text))
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        rng.shuffle(functions)
        for node in functions:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            target = "\n".join(lines[first:node.end_lineno])
            if MIN_LINES <= node.end_lineno - first <= MAX_LINES and len(target) <= MAX_CHARS:
                at = sum(len(line) + 1 for line in lines[:first])
                document = source.text[:at] + source.text[at + len(target):]
                tasks.append(Task(source.key, document, at, target))
                break
        if len(tasks) == count:
            break
    return tasks


def pause_points(target: str) -> set[int]:
    """Cursor offsets where the typist pauses: after each word, and at each line start after its indentation."""
    points = set()
    offset = 0
    for line in target.split("\n"):
        if line.strip():
            points.add(offset + len(line) - len(line.lstrip()))
        offset += len(line) + 1
    for index in range(1, len(target)):
        if _WORD.match(target[index - 1]) and not _WORD.match(target[index]):
            points.add(index)
    return {p for p in points if p < len(target)}


def keystroke(target: str, at: int) -> str:
    """What one key puts in at `at`: a character, or a line break with the next line's indentation."""
    if target[at] != "\n":
        return target[at]
    rest = target[at + 1:]
    return "\n" + rest[: len(rest) - len(rest.lstrip(" \t"))]


def word_accept(suggestion: str, truth: str) -> int:
    """Characters the typist accepts word by word: the longest right prefix that does not end inside a word
    and holds at least one whole word."""
    common = 0
    while common < min(len(suggestion), len(truth)) and suggestion[common] == truth[common]:
        common += 1
    for end in range(common, 0, -1):
        inside = end < len(suggestion) and _WORD.match(suggestion[end - 1]) and _WORD.match(suggestion[end])
        if not inside and _WORD.search(suggestion[:end]):
            return end
    return 0


class Editor:
    """One open document in the server, edited at a cursor the way an editor sends changes."""

    def __init__(self, client: DemoClient, uri: str, text: str) -> None:
        self.client, self.uri, self.text, self.version = client, uri, text, 1

    def position(self, offset: int) -> tuple[int, int]:
        line_start = self.text.rfind("\n", 0, offset) + 1
        line_text = self.text[line_start:offset]
        return self.text.count("\n", 0, offset), index_to_column(line_text, len(line_text), "utf-16")

    def insert(self, offset: int, text: str) -> None:
        line, column = self.position(offset)
        here = types.Position(line=line, character=column)
        self.version += 1
        self.client.lsp.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(range=types.Range(start=here, end=here),
                                                                    text=text)]))
        self.text = self.text[:offset] + text + self.text[offset:]


async def replay_task(client: DemoClient, task: Task, number: int, replay: Replay) -> None:
    """Type one function back into its file, asking at every pause."""
    uri = f"file:///replay/{number}/{task.key}"
    client.lsp.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=task.document)))
    editor, target, pauses = Editor(client, uri, task.document), task.target, pause_points(task.target)
    typed, asked_at, just_accepted = 0, -1, False
    while typed < len(target):
        if asked_at != typed and (typed in pauses or just_accepted):
            asked_at = typed
            line, column = editor.position(task.at + typed)
            started = time.perf_counter()
            _, status, items = await client.inline(uri, line, column, automatic=True, status_timeout=2.0)
            latency_ms = (time.perf_counter() - started) * 1000
            text = items[0].insert_text if items else ""
            truth = target[typed:]
            exact = bool(text) and truth.startswith(text)
            accepted = len(text) if exact else word_accept(text, truth) if text else 0
            replay.pauses.append(Pause(bool(text), exact, accepted, status.get("source"), latency_ms))
            if accepted:
                editor.insert(task.at + typed, target[typed:typed + accepted])
                typed += accepted
                just_accepted = True
                continue
        just_accepted = False
        key = keystroke(target, typed)
        editor.insert(task.at + typed, key)
        typed += len(key)
    replay.chars += len(target)
    client.lsp.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))


def _setting_value(text: str) -> Any:
    return None if text in ("none", "null", "0") else int(text)


async def run(args: argparse.Namespace, tasks: list[Task], model: str) -> list[Replay]:
    client = DemoClient()
    base = {"device": args.device, "debounceMs": 75}
    base |= {"engineUrl": args.engine_url} if args.engine_url else {"model": model}
    await client.start()
    try:
        await client.lsp.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities())),
            initialization_options={"mercury": base}, root_uri="file:///replay"))
        client.lsp.initialized(types.InitializedParams())
        client.lsp.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
            uri="file:///replay/warm.py", language_id="python", version=1, text="x = 1\n")))
        ready = await client.until_engine_settles(600)
        if ready["state"] != "ready":
            raise SystemExit(f"typing_replay: the engine is {ready['state']}: {ready.get('message')}")
        replays = []
        for max_lines in args.max_lines:
            for minimum in args.min_confidence:
                settings = base | {"minConfidence": minimum, "maxLines": _setting_value(max_lines)}
                client.lsp.workspace_did_change_configuration(
                    types.DidChangeConfigurationParams(settings={"mercury": settings}))
                replay = Replay(minimum, max_lines)
                started = time.perf_counter()
                for number, task in enumerate(tasks):
                    await replay_task(client, task, number, replay)
                    print(f"  {replay.label}: {number + 1}/{len(tasks)} functions, {len(replay.pauses)} pauses, "
                          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
                row = replay.row()
                print(f"  {replay.label}: {row['pauses']} pauses, shown {row['shown']:.0%}, exact {row['exact']:.0%} "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
                replays.append(replay)
        return replays
    finally:
        await client.lsp.shutdown_async(None)
        client.lsp.exit(None)
        await client.lsp.stop()


def table(replays: list[Replay]) -> str:
    lines = ["| settings | pauses | shown | accepted exact (of shown) | accepted word by word (of shown) | "
             "chars saved, full accepts | chars saved, all accepts | engine answers | p50 ms | p90 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for replay in replays:
        r = replay.row()
        lines.append(f"| {replay.label} | {r['pauses']} | {r['shown']:.1%} | {r['exact']:.1%} | {r['word']:.1%} | "
                     f"{r['saved_full']:.1%} | {r['saved_all']:.1%} | {r['engine_requests']} | {r['p50']:.0f} | "
                     f"{r['p90']:.0f} |")
    return "\n".join(lines)


def pictures(replays: list[Replay], out: Path) -> list[Path]:
    """The latency distribution of engine answers, and acceptance against minConfidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(figure: Any, axes: Any, name: str, xlabel: str, ylabel: str) -> Path:
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out / name, dpi=120)
        plt.close(figure)
        return out / name

    figure, axes = plt.subplots(figsize=(7, 4))
    for replay in replays:
        values = [p.latency_ms for p in replay.pauses if p.source == "engine"]
        if values:
            axes.hist(values, bins=40, histtype="step", label=replay.label)
    latency = save(figure, axes, "typing_replay_latency.png",
                   "request to suggestion, ms (engine answers, Automatic trigger incl. debounce)", "requests")

    groups: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for replay in replays:
        groups.setdefault(f"maxLines {replay.max_lines}", []).append((replay.min_confidence, replay.row()))
    figure, axes = plt.subplots(figsize=(7, 4))
    metrics = (("shown", "tab:blue", "shown"), ("exact", "tab:orange", "accepted exact"),
               ("word", "tab:green", "accepted by word"), ("saved_full", "tab:red", "chars saved (full)"))
    for (max_lines, points), style in zip(groups.items(), ("-", "--", ":", "-.")):
        points.sort()
        xs = [x for x, _ in points]
        for name, color, meaning in metrics:
            axes.plot(xs, [row[name] * 100 for _, row in points], style, color=color, marker="o",
                      label=f"{meaning} ({max_lines})")
    acceptance = save(figure, axes, "typing_replay_min_confidence.png", "minConfidence", "%")
    return [latency, acceptance]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=24, help="held-out functions to type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", action="append", type=Path, help="corpus root (default: the corpus's own)")
    parser.add_argument("--engine-url", help="a running engine (default: auto-start one on --model)")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="CPU threads of the auto-started engine (1 suits a busy CPU)")
    parser.add_argument("--min-confidence", type=float, nargs="+", default=[0.0])
    parser.add_argument("--max-lines", nargs="+", default=["none"], help="maxLines values (none: no limit)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    tasks = heldout_tasks(args.functions, args.seed, args.root)
    if not tasks:
        print("typing_replay: no held-out functions to type.", file=sys.stderr)
        return 2
    print(f"typing_replay: {len(tasks)} held-out functions, {sum(len(t.target) for t in tasks)} characters "
          f"(corpus walk {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    model = args.model or str(BUNDLED_MODEL)
    with tempfile.TemporaryDirectory() as scratch:
        if not args.engine_url:
            os.environ["MERCURY_RUNTIME_DIR"] = str(Path(scratch) / "runtime")
            if args.threads:
                os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the engine inherits it through the server
        try:
            replays = asyncio.run(run(args, tasks, model))
        finally:
            if not args.engine_url:
                daemon.stop_engine()
    machine = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    threads = f", {args.threads} engine thread(s)" if args.threads else ""
    header = (f"typing_replay: model {args.engine_url or Path(model).name}, {args.device}{threads}, {machine}, "
              f"{len(tasks)} held-out functions (seed {args.seed}), {replays[0].chars} characters per run")
    report = header + "\n\n" + table(replays) + "\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "typing_replay.md").write_text(report, encoding="utf-8")
    for path in pictures(replays, args.out):
        print(f"wrote {path}", file=sys.stderr)
    print(f"typing_replay: median pause-to-answer over all requests "
          f"{statistics.median(p.latency_ms for r in replays for p in r.pauses):.0f} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
