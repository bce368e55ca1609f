"""Hole-filling evaluation on held-out files with the engine's real InfillEngine and default sampler settings.

Scores exact match (trailing whitespace aside), whether the filled file still parses, and CPU latency per request.
Context windows follow the language server's defaults (1,024 prefix tokens, 256 suffix tokens).
"""

from __future__ import annotations

import ast
import random
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mercury_lsp.engine.api.file_header import file_header
from mercury_lsp.engine.api.infill import SINGLE_LINE_TOKENS, InfillRequest
from mercury_lsp.engine.checkpoint import LoadedModel
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.training.corpus import SourceFile, collect_corpus

MULTI_LINE_TOKENS = 64
PREFIX_TOKENS = 1024
SUFFIX_TOKENS = 256
MAX_SINGLE_CHARS = 80
MAX_MULTI_CHARS = 160

# Everyday code with one obvious continuation: (prefix, suffix, what a person would type).
COMMON_CODE = [
    ("def total(items):\n    result = ", "\n    for item in items:\n        result.append(item * 2)\n    return result\n", "[]"),
    ("def total(values):\n    total = 0\n    for value in values:\n        total += value\n    return ", "\n", "total"),
    ("def squares(n):\n    out = []\n    for ", "\n        out.append(i * i)\n    return out\n", "i in range(n):"),
    ("class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.", "\n", "y = y"),
    ("def read(path):\n    with open(path) as f:\n        return f.", "\n", "read()"),
    ("def main():\n    print('hi')\n\n\nif __name__ == ", "\n    main()\n", '"__main__":'),
    ("def show(d):\n    for key, value in d.", "\n        print(key, value)\n", "items():"),
    ("import os\nimport ", "\n\nprint(sys.argv, os.getcwd())\n", "sys"),
    ("def add(a, b):\n    ", "\n", "return a + b"),
    ("def is_even(n):\n    if n % 2 == 0:\n        return True\n    ", "\n", "return False"),
]


@dataclass
class Hole:
    key: str
    kind: str  # "single" or "multi"
    prefix: str
    suffix: str
    truth: str


@dataclass
class Outcome:
    hole: Hole
    text: str
    exact: bool
    compiles: bool
    ms: float
    tokens: int = 0  # new tokens in the answer
    steps: int = 0  # denoising steps (forwards) it took

    def describe(self) -> str:
        tail = self.hole.prefix.rsplit("\n", 1)[-1]
        return (
            f"[{self.hole.kind}] {self.hole.key}\n  cursor line: {tail!r}\n  model: {self.text!r}\n"
            f"  truth: {self.hole.truth!r}  ({'exact' if self.exact else 'differs'}, "
            f"{'parses' if self.compiles else 'does not parse'}, {self.ms:.0f} ms)"
        )


@dataclass
class EvalReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for kind in ("single", "multi"):
            rows = [o for o in self.outcomes if o.hole.kind == kind]
            if not rows:
                continue
            times = sorted(o.ms for o in rows)
            out[kind] = {
                "holes": len(rows),
                "exact_match": sum(o.exact for o in rows) / len(rows),
                "compiles": sum(o.compiles for o in rows) / len(rows),
                "empty": sum(not o.text.strip() for o in rows) / len(rows),
                "p50_ms": percentile(times, 0.5),
                "p90_ms": percentile(times, 0.9),
                # Over all requests: the answer tokens the steps bought (Fast-dLLM's tokens per forward).
                "tokens_per_step": sum(o.tokens for o in rows) / max(1, sum(o.steps for o in rows)),
                "steps_p50": percentile([o.steps for o in rows], 0.5),
                "steps_mean": statistics.mean(o.steps for o in rows),
            }
        return out


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0 < q < 1) by linear interpolation between the nearest ranks (numpy's default); the one
    definition every benchmark and evaluation here uses."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q * 100) - 1))]


def parses(source: str) -> bool:
    """True when the source is valid Python for this interpreter."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences in old files are not our business
            ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


def _content_lines(text: str) -> list[tuple[int, str]]:
    """(start offset, line) for every line with code on it (blank and comment-only lines aside)."""
    out, offset = [], 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append((offset, line))
        offset += len(line) + 1
    return out


def punch_hole(source: SourceFile, kind: str, rng: random.Random) -> Hole | None:
    """A single-line hole (rest of a line from a random cursor) or a multi-line one (2-4 lines after the
    indentation); None when the drawn spot does not fit."""
    text = source.text
    lines = _content_lines(text)
    if len(lines) < 5:
        return None
    index = rng.randrange(len(lines) - 4)
    start, line = lines[index]
    indent = len(line) - len(line.lstrip())
    if kind == "single":
        content = len(line.rstrip()) - indent
        cut = indent if rng.random() < 0.4 else indent + rng.randrange(max(1, content - 1))
        a, b = start + cut, start + len(line)
        limit = MAX_SINGLE_CHARS
    else:
        a = start + indent
        end_start, end_line = lines[index + rng.randint(1, 3)]
        b = end_start + len(end_line)
        limit = MAX_MULTI_CHARS
    truth = text[a:b]
    if not truth.strip() or len(truth) > limit:
        return None
    return Hole(source.key, kind, text[:a], text[b:], truth)


def heldout_holes(
    single: int,
    multi: int,
    seed: int = 0,
    roots: list[Path] | None = None,
    files: list[SourceFile] | None = None,
) -> list[Hole]:
    """Holes drawn (seeded) from held-out files that parse; the same seed gives the same holes."""
    if files is None:
        files = collect_corpus(roots).heldout
    files = [f for f in files if parses(f.text)]
    rng = random.Random(seed)
    holes: list[Hole] = []
    for kind, count in (("single", single), ("multi", multi)):
        made, tries = 0, 0
        while files and made < count and tries < count * 50:
            tries += 1
            hole = punch_hole(rng.choice(files), kind, rng)
            if hole is not None:
                holes.append(hole)
                made += 1
    return holes


def evaluation_engine(
    loaded: LoadedModel, prefix_tokens: int = PREFIX_TOKENS, suffix_tokens: int = SUFFIX_TOKENS, **settings: object
) -> InfillEngine:
    """The engine with its default sampler and a context budget (the language server's by default); `settings`
    are further EngineSettings fields (confidence, exact_context, ...)."""
    return InfillEngine(loaded, EngineSettings(max_prefix_tokens=prefix_tokens, max_suffix_tokens=suffix_tokens,
                                               **settings))


def hole_request(prefix: str, suffix: str, kind: str, header: str = "") -> InfillRequest:
    """The request the language server would send for a hole (default steps and threshold, the file's header).

    Filler length control is named explicitly: the bundled model is trained for it, and the loader would pick
    expand/delete mode for any tokenizer that merely contains those tokens."""
    single = kind == "single"
    return InfillRequest(
        prefix, suffix, header=header, max_tokens=SINGLE_LINE_TOKENS if single else MULTI_LINE_TOKENS,
        single_line=single, length_mode="filler",
    )


def evaluate_model(
    loaded: LoadedModel, holes: list[Hole], prefix_tokens: int = PREFIX_TOKENS, suffix_tokens: int = SUFFIX_TOKENS,
    **settings: object,
) -> EvalReport:
    engine = evaluation_engine(loaded, prefix_tokens, suffix_tokens, **settings)
    report = EvalReport()
    for hole in holes:
        result = engine.infill(hole_request(hole.prefix, hole.suffix, hole.kind, file_header(hole.key, "python")))
        report.outcomes.append(
            Outcome(
                hole=hole,
                text=result.text,
                exact=result.text.rstrip() == hole.truth.rstrip(),
                compiles=parses(hole.prefix + result.text + hole.suffix),
                ms=result.ms,
                tokens=result.tokens,
                steps=result.steps,
            )
        )
    return report


def common_code_completions(loaded: LoadedModel) -> list[tuple[str, str, str]]:
    """(cursor line, completion, expected) for the everyday prompts, as single-line requests."""
    engine = evaluation_engine(loaded)
    rows = []
    for prefix, suffix, expected in COMMON_CODE:
        result = engine.infill(hole_request(prefix, suffix, "single"))
        rows.append((prefix.rsplit("\n", 1)[-1], result.text, expected))
    return rows


def format_table(report: EvalReport) -> str:
    """The evaluation as a Markdown table."""
    names = {"single": f"single-line (canvas {SINGLE_LINE_TOKENS})", "multi": f"multi-line (canvas {MULTI_LINE_TOKENS})"}
    lines = [
        "| holes | count | exact match | parses | empty | tokens/step | steps p50 (mean) | p50 ms | p90 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in report.summary().items():
        lines.append(
            f"| {names[kind]} | {row['holes']} | {row['exact_match']:.1%} | {row['compiles']:.1%} | "
            f"{row['empty']:.1%} | {row['tokens_per_step']:.2f} | {row['steps_p50']:.0f} ({row['steps_mean']:.1f}) | "
            f"{row['p50_ms']:.0f} | {row['p90_ms']:.0f} |"
        )
    return "\n".join(lines)
