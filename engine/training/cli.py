"""`mercury-engine train` and `mercury-engine eval`: the bundled model's training run and its evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mercury_lsp.engine.cli import (
    UsageError,
    add_confidence_option,
    add_context_dtype_option,
    add_model_options,
    commit_threshold,
)

REPOSITORY = Path(__file__).resolve().parent.parent


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train the small diffusion code model (resumable)")
    train.add_argument("--work-dir", type=Path, default=Path("runs/default"), help="state, tokenizer and exports")
    train.add_argument("--preset", choices=["tiny", "cpu", "gpu"], default="cpu")
    train.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of this run")
    train.add_argument("--max-steps", type=int, default=None)
    train.add_argument("--checkpoint-minutes", type=float, default=5.0)
    train.add_argument("--export", type=Path, default=None, help="also write the model folder here at checkpoints")
    train.add_argument("--root", type=Path, action="append", help="corpus root (default: stdlib and site-packages)")
    train.add_argument("--tokenizer", type=Path, default=None, help="reuse this tokenizer.json instead of training one")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    train.add_argument("--workers", type=int, default=0, help="example-building worker processes")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    train.add_argument("--init-from", type=Path, default=None,
                       help="start from this model folder's weights (same shape) when the work dir has no state")
    train.add_argument("--objective", choices=["diffusion", "autoregressive"], default="diffusion",
                       help="autoregressive: the causal warm start before diffusion training")
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser("eval", help="fill holes in held-out files and report exact match, compiles, latency")
    add_model_options(evaluate)
    evaluate.add_argument("--single", type=int, default=200, help="single-line holes")
    evaluate.add_argument("--multi", type=int, default=100, help="multi-line holes")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--root", type=Path, action="append", help="corpus root (default: stdlib and site-packages)")
    evaluate.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    evaluate.add_argument("--examples", type=int, default=0, help="print this many filled holes")
    evaluate.add_argument("--prefix-tokens", type=int, default=1024, help="prefix budget (language server default)")
    evaluate.add_argument("--suffix-tokens", type=int, default=256, help="suffix budget (language server default)")
    evaluate.add_argument("--common", action="store_true", help="also complete the everyday-code prompts")
    add_confidence_option(evaluate)
    evaluate.add_argument("--threshold", type=commit_threshold, default=None,
                        help="commit threshold for requests that name none (default: the model's calibrated one, "
                             "else 0.9)")
    evaluate.add_argument("--exact-context", action="store_true",
                          help="full bidirectional attention at every step (no prefix chunks, no cached context)")
    add_context_dtype_option(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    evaluate.set_defaults(func=cmd_eval)

    probe = subparsers.add_parser("train-probe", help="train the learned commit rule from the model's own "
                                  "trajectories on training files (minutes on a CPU)")
    add_model_options(probe)
    probe.add_argument("--single", type=int, default=400, help="single-line training holes")
    probe.add_argument("--multi", type=int, default=160, help="multi-line training holes")
    probe.add_argument("--precision", type=float, default=0.98,
                       help="share of the probe's commits on held-back holes that must be final tokens "
                            "(default 0.98: lower ones cost the bundled model quality, bench/RESULTS.md)")
    probe.add_argument("--seed", type=int, default=0)
    probe.add_argument("--root", type=Path, action="append", help="corpus root (default: stdlib and site-packages)")
    probe.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    probe.add_argument("--out", type=Path, default=None,
                       help="folder to write commit_probe.safetensors into (default: the model's folder)")
    probe.set_defaults(func=cmd_train_probe)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from mercury_lsp.engine.checkpoint import pick_device
    from mercury_lsp.engine.training.train import PRESETS, run_training

    if args.minutes <= 0:
        raise UsageError("--minutes must be positive.")
    for root in args.root or []:
        if not root.is_dir():
            raise UsageError(f"corpus root {root} is not a folder.")
    if args.tokenizer is not None and not args.tokenizer.is_file():
        raise UsageError(f"tokenizer file {args.tokenizer} does not exist.")
    if args.init_from is not None and not args.init_from.is_dir():
        raise UsageError(f"model folder {args.init_from} does not exist.")  # before the corpus walk, not after
    if args.threads:
        torch.set_num_threads(args.threads)
    state = run_training(
        args.work_dir,
        PRESETS[args.preset],
        args.minutes,
        export_to=args.export,
        roots=args.root,
        exclude_repo=REPOSITORY if (REPOSITORY / ".git").exists() else None,
        tokenizer_from=args.tokenizer,
        device=pick_device(args.device),
        checkpoint_minutes=args.checkpoint_minutes,
        max_steps=args.max_steps,
        workers=args.workers,
        compile_model=args.compile,
        bf16=not args.fp32,
        objective=args.objective,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        init_from=args.init_from,
    )
    print(json.dumps({"steps": state.step, "tokens_seen": state.tokens_seen, "seconds": round(state.seconds, 1)}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from mercury_lsp.engine.checkpoint import load_checkpoint
    from mercury_lsp.engine.training.evaluate import (
        common_code_completions,
        evaluate_model,
        format_table,
        heldout_holes,
    )
    from mercury_lsp.models import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_checkpoint(resolve_model_path(args.model), device=args.device)
    if args.prefix_tokens < 0 or args.suffix_tokens < 0:
        raise UsageError("--prefix-tokens and --suffix-tokens must not be negative.")
    if args.single + args.multi > 0:
        holes = heldout_holes(args.single, args.multi, args.seed, roots=args.root)
        if not holes:
            raise UsageError("no held-out files to punch holes in.")
        report = evaluate_model(loaded, holes, args.prefix_tokens, args.suffix_tokens, confidence=args.confidence,
                                filler_threshold=args.filler_threshold, tail_threshold=args.tail_threshold,
                                commit_rule=args.commit_rule,
                                threshold=args.threshold, exact_context=args.exact_context,
                                context_dtype=args.context_dtype)
        print(json.dumps(report.summary()) if args.json else format_table(report))
        for outcome in report.outcomes[: args.examples]:
            print(outcome.describe())
    if args.common:
        print("\n| cursor line | completion | a person would type |\n|---|---|---|")
        for line, text, expected in common_code_completions(loaded):
            print(f"| `{line}` | `{text!r}` | `{expected}` |")
    return 0


def cmd_train_probe(args: argparse.Namespace) -> int:
    import torch

    from mercury_lsp.engine.checkpoint import load_checkpoint
    from mercury_lsp.engine.training.commit_probe import train_commit_probe
    from mercury_lsp.engine.training.corpus import collect_corpus
    from mercury_lsp.models import resolve_model_path

    if not 0.5 <= args.precision < 1:
        raise UsageError("--precision must be in [0.5, 1).")
    if args.single < 0 or args.multi < 0 or args.single + args.multi < 2:
        raise UsageError("--single and --multi must not be negative, and give two holes at least.")
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = resolve_model_path(args.model)
    out = args.out or folder
    if not out.is_dir():
        raise UsageError(f"output folder {out} does not exist.")
    loaded = load_checkpoint(folder, device=args.device)
    files = collect_corpus(args.root).train  # never the held-out side the evaluation reads
    report = train_commit_probe(loaded, files, args.single, args.multi, args.precision, seed=args.seed,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    path = report.probe.save(out)
    print(json.dumps({"probe": str(path), "threshold": round(report.probe.threshold, 4), "rows": report.rows,
                      "holdout_rows": report.holdout_rows, "base_rate": round(report.base_rate, 4),
                      "holdout_commits": round(report.holdout_commits, 4),
                      "holdout_precision": round(report.holdout_precision, 4)}))
    return 0
