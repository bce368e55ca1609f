"""What the benchmarks share: holes cut from a real source file, the model to measure, and percentiles."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mercury_lsp.engine.training.evaluate import percentile  # noqa: F401  (the benchmarks' percentile)
from mercury_lsp.models import BUNDLED_MODEL

# A real, long Python file that every machine with Python has.
SOURCE_FILE = Path(argparse.__file__)


def holes(text: str, count_tokens: Callable[[str], int], context_tokens: int, count: int) -> list[tuple[str, str]]:
    """Cursor positions spread over the file, each with about `context_tokens` of context around it
    (three quarters before the cursor, one quarter after)."""
    sample = text[:20000]
    chars_per_token = len(sample) / max(1, count_tokens(sample))
    before = int(context_tokens * 0.75 * chars_per_token)
    after = int(context_tokens * 0.25 * chars_per_token)
    out = []
    for i in range(count):
        cursor = before + (len(text) - before - after) * (i + 1) // (count + 1)
        out.append((text[cursor - before : cursor], text[cursor : cursor + after]))
    return out


# Random-weight shapes for when no model is at hand: the numbers are then about speed only.
SHAPES = {
    "tiny": dict(),
    "small": dict(hidden=512, layers=8, heads=8, kv_heads=8),  # DESIGN.md's small shape, with a tiny vocabulary
}


def benchmark_model(model: str | None, scratch: Path, shape: str) -> tuple[Path, str]:
    """The model folder to measure and its label: --model, else the bundled model, else random weights."""
    if model:
        return Path(model), model
    if BUNDLED_MODEL.exists():
        return BUNDLED_MODEL, "bundled"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from checkpoints import make_tiny_checkpoint

    return make_tiny_checkpoint(scratch / "random", **SHAPES[shape]), f"random weights ({shape} shape)"


def spawn_engine(folder: Path, model: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`mercury-engine serve` on a free loopback port (its port file in `folder`, a private temporary folder);
    returns the process and its URL once the port is bound (the model may still be loading)."""
    port_file = folder / "engine.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "mercury_lsp.engine.cli", "serve", "--device", "cpu", "--port", "0",
         "--port-file", str(port_file), "--model", str(model), "--log-level", "warning", *args],
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the engine did not start.")
        time.sleep(0.05)
    return process, json.loads(port_file.read_text())["url"]
