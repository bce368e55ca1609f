"""Next-edit suggestions on code the model never saw: apply a first edit, ask the engine for the next, and count
exact proposals, wrong proposals and silences, with the latency.

    python bench/next_edit.py [--model PATH] [--threads 2] [--sweep]
    python bench/next_edit.py --random 0.5b [--device cuda] [--tasks 2]   # speed only: random Qwen2.5-0.5B weights

Tasks (written for this benchmark, after the bundled model was trained): rename a local, add a parameter and
update its call, change a field name, swap an argument order. A proposal is exact when applying it gives one of
the task's accepted next states (any one of the remaining occurrences, fixed). The question goes through the
engine's own /v1/edit/completions path (`answer_edit_request`) with the prompt the language server builds: the
edited region is 8 lines either side of the cursor, the history is the first edit's unified diff. `--sweep` also
runs looser thresholds, to show what the settings trade. `--random` builds random weights of a Qwen2.5 shape
(bench/gpu_step.py's) with the bundled tokenizer: its answers mean nothing, its latency is what that size costs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from gpu_step import SHAPES, random_model  # bench/ is on the path when this script runs

from mercury_lsp.edit_history import EditHistory, split_lines
from mercury_lsp.engine.api.edit_completions import EditCompletionRequest, EditPrompt
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.next_edit import NextEditSettings, answer_edit_request
from mercury_lsp.models import BUNDLED_MODEL

WINDOW_LINES = 8


@dataclass(frozen=True)
class Task:
    kind: str
    before: str
    first: tuple[str, str]  # the user's first edit: this text (its first occurrence) becomes that
    accepted: tuple[str, ...]  # texts after a correct next edit


def rename(name: str, before: str, old: str, new: str) -> Task:
    """Rename `old` where it is first assigned; any one of its other occurrences renamed is a right next edit."""
    first = before.index(f"{old} =")
    edited = before[:first] + new + before[first + len(old):]
    accepted = []
    at = edited.find(old)
    while at >= 0:
        accepted.append(edited[:at] + new + edited[at + len(old):])
        at = edited.find(old, at + 1)
    return Task(name, before, (before[first : first + len(old) + 2], f"{new} ="), tuple(accepted))


PARSE = '''def parse_pairs(text):
    pairs = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        pairs[key.strip()] = value.strip()
    return pairs
'''
WINDOWED = '''def moving_sum(samples, width):
    window = []
    out = []
    for sample in samples:
        window.append(sample)
        if len(window) > width:
            window.pop(0)
        out.append(sum(window))
    return out
'''
SCALE = '''def scale(points, factor):
    return [(x * factor, y * factor) for x, y in points]


def grow(shapes):
    return [scale(shape, 2) for shape in shapes]
'''
FIELD = '''class Invoice:
    def __init__(self, amount, tax):
        self.amount = amount
        self.tax = tax

    def total(self):
        return self.amount + self.amount * self.tax
'''
SWAP = '''def clamp(value, low, high):
    return max(low, min(high, value))


def percent(raw):
    return clamp(raw, 0, 100)
'''

TASKS = [
    rename("rename local", PARSE, "pairs", "table"),
    rename("rename local", WINDOWED, "window", "recent"),
    rename("rename local", WINDOWED, "out", "sums"),
    Task("add parameter", SCALE, ("def scale(points, factor):", "def scale(points, factor, offset):"),
         (SCALE.replace("def scale(points, factor):", "def scale(points, factor, offset):")
          .replace("scale(shape, 2)", "scale(shape, 2, offset)"),
          SCALE.replace("def scale(points, factor):", "def scale(points, factor, offset):")
          .replace("scale(shape, 2)", "scale(shape, 2, 0)"))),
    Task("change field", FIELD, ("self.amount = amount", "self.net = amount"),
         tuple(FIELD.replace("self.amount = amount", "self.net = amount").replace(
             "self.amount + self.amount", variant) for variant in ("self.net + self.amount", "self.amount + self.net",
                                                                   "self.net + self.net"))),
    Task("swap arguments", SWAP, ("def clamp(value, low, high):", "def clamp(low, high, value):"),
         (SWAP.replace("def clamp(value, low, high):", "def clamp(low, high, value):")
          .replace("clamp(raw, 0, 100)", "clamp(0, 100, raw)"),)),
]


def question(task: Task, min_confidence: float) -> tuple[EditCompletionRequest, str]:
    """The request the language server sends after the first edit, and the file it is about."""
    old, new = task.first
    at = task.before.index(old)
    text = task.before[:at] + new + task.before[at + len(old):]
    line = task.before[:at].count("\n")
    history = EditHistory()
    before_lines, after_lines = split_lines(task.before), split_lines(text)
    history.record(line, before_lines[line : line + 1], after_lines[line : line + 1], 0.0)
    diff = "".join(h.unified("task.py") for h in history.hunks(0.0))
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    region = (starts[max(0, line - WINDOW_LINES)], starts[min(len(starts) - 1, line + WINDOW_LINES + 1)])
    if region[1] <= region[0]:
        region = (region[0], len(text))
    cursor = at + len(new)
    prompt = EditPrompt("task.py", text, region, cursor, diff)
    return EditCompletionRequest("bench", prompt, None, min_confidence), text


def run(engine: InfillEngine, settings: NextEditSettings, label: str) -> str:
    exact = wrong = silent = 0
    latencies = []
    for task in TASKS:
        request, text = question(task, settings.min_confidence)
        started = time.perf_counter()
        region, result = answer_edit_request(engine, request, settings)
        latencies.append((time.perf_counter() - started) * 1000)
        start, end = request.prompt.region
        applied = text[:start] + region + text[end:]
        if result.proposal is None:
            silent += 1
        elif applied in task.accepted:
            exact += 1
        else:
            wrong += 1
            print(f"  wrong ({task.kind}): {text[result.proposal.start:result.proposal.end]!r} -> "
                  f"{result.proposal.text!r}")
    p50 = statistics.median(latencies)
    return f"| {label} | {len(TASKS)} | {exact} | {wrong} | {silent} | {p50:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--random", choices=sorted(SHAPES), help="random weights of this shape, for speed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="the first N tasks only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    del TASKS[args.tasks:]
    device = torch.device(args.device)
    if args.random:
        name, config = SHAPES[args.random]
        loaded = random_model(config, device, torch.bfloat16 if device.type == "cuda" else torch.float32)
        loaded.name = f"random {name}"
    else:
        loaded = load_checkpoint(args.model, device=args.device)
    engine = InfillEngine(loaded, EngineSettings(max_batch=4, cuda_graphs=False))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} CPU threads"
    print(f"model {loaded.name} ({loaded.dtype}), {where}\n")
    print("| settings | tasks | exact | wrong | silent | p50 ms |\n|---|---|---|---|---|---|")
    default = NextEditSettings()
    print(run(engine, default, f"default (min doubt {default.min_doubt}, min confidence {default.min_confidence})"))
    if args.sweep:
        for doubt, confidence in ((1.0, 0.3), (0.0, 0.0)):
            loose = NextEditSettings(min_doubt=doubt, min_confidence=confidence)
            print(run(engine, loose, f"min doubt {doubt}, min confidence {confidence}"))


if __name__ == "__main__":
    main()
