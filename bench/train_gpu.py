"""The bundled model's GPU training run: one H100/H200, under nine minutes, writes mercury_lsp/models/default.

    python bench/train_gpu.py                 # 7.5 minutes of training, resumes from runs/gpu when present
    python bench/train_gpu.py --minutes 3     # a shorter run (or a continuation of the last one)
    python bench/train_gpu.py --init-from mercury_lsp/models/default   # continue the shipped model (new optimizer)
    python bench/train_gpu.py --check         # a few tiny CPU steps into a temp folder: the script's plumbing

Same objective and code as `mercury-engine train` (engine/training/train.py): a causal warm start, then masked diffusion
and infilling with shifted prediction; the "gpu" preset: 23.5M parameters
(d 512, 6 layers), sequences of 1,024 tokens, batches of 64, bf16 autocast, SDPA flash attention, torch.compile,
example-building worker processes. The tokenizer of the current bundled model is reused so the vocabulary stays.
Prints a table of the run at the end. The shipped model is this script's defaults run once on an H200 (through
`bench/gpu_session.sh train 7.5`, which installs the checkout there and writes the shards to the device's $OUT;
log in bench/gpu/train_h200.log): 577M tokens in 450 s of training.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# The Triton kernels have no backward pass: training runs the torch references (SDPA still takes flash).
os.environ["MERCURY_KERNELS"] = "reference"

import torch  # noqa: E402

from mercury_lsp.engine.training.corpus import collect_corpus  # noqa: E402
from mercury_lsp.engine.training.train import PRESETS, run_training  # noqa: E402
from mercury_lsp.models import BUNDLED_MODEL  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=7.5, help="training wall time (corpus and export aside)")
    parser.add_argument("--warm-start-minutes", type=float, default=1.0,
                        help="of those, causal next-token training first (only when no earlier run exists)")
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / "runs" / "gpu")
    parser.add_argument("--export", type=Path, default=BUNDLED_MODEL)
    parser.add_argument("--workers", type=int, default=min(12, max(1, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from this model folder's weights (e.g. the bundled model) instead of from scratch; "
                             "skips the causal warm start")
    parser.add_argument("--roots", type=Path, nargs="+", help="corpus folders (default: stdlib and site-packages)")
    parser.add_argument("--check", action="store_true", help="tiny CPU run into a temp folder")
    args = parser.parse_args()

    started = time.perf_counter()
    tokenizer = BUNDLED_MODEL / "tokenizer.json"
    if args.check:
        scratch = Path(tempfile.mkdtemp(prefix="train_gpu_check_"))
        config, device, minutes = PRESETS["tiny"], torch.device("cpu"), 1.0
        work_dir, export, workers, compile_model, max_steps = scratch / "run", scratch / "model", 1, False, 5
        tokenizer = None  # the tiny preset trains its own small tokenizer
        roots = [Path(os.__file__).parent / "json"]
    else:
        if not torch.cuda.is_available():
            print("train_gpu: no CUDA device here; use --check for a CPU dry run.", file=sys.stderr)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        config, device, minutes = PRESETS["gpu"], torch.device("cuda"), args.minutes
        work_dir, export, workers, compile_model, max_steps = (
            args.work_dir, args.export, args.workers, not args.no_compile, None
        )
        roots = args.roots
    corpus_started = time.perf_counter()
    corpus = collect_corpus(roots, exclude_repo=REPOSITORY)  # once, for the warm start and the run after it
    print(f"corpus: {len(corpus.train)} train files ({corpus.chars() / 1e6:.0f}M chars), {len(corpus.heldout)} held out, "
          f"skipped {corpus.skipped} ({time.perf_counter() - corpus_started:.0f} s)", file=sys.stderr, flush=True)
    common = dict(
        corpus=corpus, device=device, checkpoint_minutes=2.0, workers=workers,
        compile_model=compile_model, log=lambda line: print(line, file=sys.stderr, flush=True),
        tokenizer_from=tokenizer if tokenizer is not None and tokenizer.exists() else None,
    )
    resuming = (work_dir / "state.pt").exists() or args.init_from is not None
    warm = 0.0 if resuming else (0.2 if args.check else args.warm_start_minutes)
    if warm > 0:
        # Shifted prediction reads token i at output i-1, as causal training does: the warm start carries over.
        run_training(work_dir, config, warm, objective="autoregressive",
                     max_steps=2 if args.check else None, **common)
    state = run_training(
        work_dir,
        config,
        minutes - warm,
        export_to=export,
        max_steps=max_steps,
        init_from=args.init_from,
        **common,
    )
    last = state.history[-1] if state.history else {}
    rows = [
        ("device", torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
        ("steps (all runs)", state.step),
        ("tokens seen (all runs)", f"{state.tokens_seen / 1e6:.1f}M"),
        ("tokens/s (last window)", last.get("tokens_per_s", "-")),
        ("loss (last window)", last.get("loss", "-")),
        ("wall time of this run", f"{time.perf_counter() - started:.0f} s"),
        ("model folder", export),
    ]
    print("| quantity | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
