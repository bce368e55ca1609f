"""The bundled model's held-out holes with the context kept in float32 and in bfloat16 (EngineSettings.context_dtype),
the same holes through the same engine code: exact match, parses, steps, and how many answers differ at all.

    python bench/results/issue21/round4/context_dtype_eval.py [--single 200] [--multi 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.training.evaluate import evaluate_model, heldout_holes
from mercury_lsp.models import resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--multi", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(resolve_model_path(None), device="cpu")
    holes = heldout_holes(args.single, args.multi, args.seed)
    reports = {dtype: evaluate_model(loaded, holes, context_dtype=dtype) for dtype in args.dtypes}
    base = args.dtypes[0]
    print(f"{len(holes)} held-out holes (seed {args.seed}), bundled model, float32 weights, --threads {args.threads}\n")
    print(f"| context dtype | holes | exact match | parses | tokens/step | steps mean | p50 ms | answers as {base}'s |")
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("single", "multi"):
        for dtype, report in reports.items():
            mine = [o for o in report.outcomes if o.hole.kind == kind]
            theirs = [o for o in reports[base].outcomes if o.hole.kind == kind]
            same = sum(a.text == b.text for a, b in zip(mine, theirs))
            print(f"| {kind} {dtype} | {len(mine)} | {statistics.fmean(o.exact for o in mine):.1%} | "
                  f"{statistics.fmean(o.compiles for o in mine):.1%} | "
                  f"{sum(o.tokens for o in mine) / max(sum(o.steps for o in mine), 1):.2f} | "
                  f"{statistics.fmean(o.steps for o in mine):.2f} | {statistics.median(o.ms for o in mine):.0f} | "
                  f"{same} / {len(mine)} |")


if __name__ == "__main__":
    main()
