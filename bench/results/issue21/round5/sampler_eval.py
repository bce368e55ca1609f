"""The bundled model's held-out holes through the engine, every answer written to JSON, and compared with an earlier
run's: the exact-match check for a change to the sampler (same text, same steps, hole by hole).

    python bench/results/issue21/round5/sampler_eval.py --dump base.json            # code before the change
    python bench/results/issue21/round5/sampler_eval.py --dump new.json --against base.json

Run the code before the change from a copy whose `mercury_lsp` package holds engine/ and kernels/ (PYTHONPATH), so
both runs read the same holes, model and settings and differ only in code.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from mercury_lsp.engine import sampler
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.training.evaluate import evaluate_model, heldout_holes
from mercury_lsp.models import resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--multi", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dump", required=True)
    parser.add_argument("--against")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"code: {sampler.__file__}")
    loaded = load_checkpoint(resolve_model_path(None), device="cpu")
    holes = heldout_holes(args.single, args.multi, args.seed)
    started = time.perf_counter()
    report = evaluate_model(loaded, holes)
    print(f"{len(holes)} held-out holes (seed {args.seed}) in {time.perf_counter() - started:.0f} s, "
          f"--threads {args.threads}")
    rows = [{"kind": o.hole.kind, "text": o.text, "steps": o.steps, "tokens": o.tokens, "exact": o.exact,
             "parses": o.compiles, "ms": o.ms} for o in report.outcomes]
    with open(args.dump, "w") as f:
        json.dump(rows, f)
    base = json.load(open(args.against)) if args.against else rows
    print("\n| holes | exact match | parses | tokens/step | steps mean | p50 ms | base p50 ms | same text | same steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("single", "multi"):
        mine = [r for r in rows if r["kind"] == kind]
        theirs = [r for r in base if r["kind"] == kind]
        print(f"| {kind} {len(mine)} | {statistics.fmean(r['exact'] for r in mine):.1%} | "
              f"{statistics.fmean(r['parses'] for r in mine):.1%} | "
              f"{sum(r['tokens'] for r in mine) / max(sum(r['steps'] for r in mine), 1):.2f} | "
              f"{statistics.fmean(r['steps'] for r in mine):.2f} | {statistics.median(r['ms'] for r in mine):.0f} | "
              f"{statistics.median(r['ms'] for r in theirs):.0f} | "
              f"{sum(a['text'] == b['text'] for a, b in zip(mine, theirs))} / {len(mine)} | "
              f"{sum(a['steps'] == b['steps'] for a, b in zip(mine, theirs))} / {len(mine)} |")


if __name__ == "__main__":
    main()
