"""The bundled model's evaluation under variants that were measured and not kept (bench/RESULTS.md).

    python bench/eval_variants.py VARIANT [--single 200] [--multi 100] [--seed 0] [--factor 1.0]

Each variant changes one thing around `mercury-engine eval` (same held-out holes, same table) in this process:

    base            the engine as it ships
    steps           step budget = canvas x --factor instead of canvas / 2
    server          single-line holes asked the way the language server asked before it sized single lines
                    itself (canvas 64, multi-line unless text follows the cursor), its post-processing applied,
                    against `server-eval` (the evaluation's own single-line request, same post-processing)
    server-eval     see server
    server-single   as server, but one line (canvas 32) after typed text unless a block opener ends it
    int8            dynamic int8 quantization of the transformer layers' linear maps (per channel)
    answer-first    a step's forced commits go to the answer: commits of the filler run no longer count toward
                    the step's minimum, and the run's frontier is forced only when no answer position is left

Engine settings are options of `mercury-engine eval` itself: `--exact-context` (full bidirectional attention at
every step), `--confidence margin|entropy`. The earlier `frontier` variant re-typed the commit selection and was
removed with it; its row in RESULTS.md stays as measured then.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings

import torch

import mercury_lsp.engine.training.evaluate as evaluate
from mercury_lsp.engine.cli import main as engine_main
from mercury_lsp.postprocess import _BLOCK_OPENER, CursorView, postprocess

VARIANTS = ("base", "steps", "server", "server-eval", "server-single", "int8", "answer-first")


def patch_requests(change) -> None:
    """Rewrite each hole's request with change(request, view, kind)."""
    original = evaluate.hole_request

    def request(prefix: str, suffix: str, kind: str, header: str = ""):
        return change(original(prefix, suffix, kind, header), CursorView.around(prefix, suffix), kind)

    evaluate.hole_request = request


def patch_postprocessing() -> None:
    """Judge each completion after the language server's filters, as an editor would show it."""
    original = evaluate.evaluate_model

    def evaluate_model(loaded, holes, *args, **kwargs):
        report = original(loaded, holes, *args, **kwargs)
        for outcome in report.outcomes:
            text = postprocess(outcome.text, CursorView.around(outcome.hole.prefix, outcome.hole.suffix))
            outcome.text = text
            outcome.exact = text.rstrip() == outcome.hole.truth.rstrip()
            outcome.compiles = evaluate.parses(outcome.hole.prefix + text + outcome.hole.suffix)
        return report

    evaluate.evaluate_model = evaluate_model


def patch_int8() -> None:
    warnings.filterwarnings("ignore")  # the quantization API announces its own deprecation
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    import mercury_lsp.engine.checkpoint as checkpoint

    original = checkpoint.load_checkpoint

    def load(*args, **kwargs):
        kwargs["dtype"] = torch.float32
        loaded = original(*args, **kwargs)
        loaded.model.layers = quantize_dynamic(
            loaded.model.layers, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
        return loaded

    checkpoint.load_checkpoint = load


def patch_answer_first() -> None:
    """The commit rule (kernels/commit.py's reference, used on a CPU) with the step's minimum counted in answer
    commits."""
    import mercury_lsp.engine.sampler as sampler
    from mercury_lsp.kernels.commit import _suffix_run, commit_confident_reference

    def commit_answer_first(p_best, id_best, p_nf, id_nf, best_is_filler, masked, committed_filler, threshold,
                            filler_rule, min_commits=None, filler_threshold=None):
        # The shipped rule's threshold commits, nothing forced; then the forcing, counted in answer commits.
        commit, token, conf = commit_confident_reference(
            p_best, id_best, p_nf, id_nf, best_is_filler, masked, committed_filler, threshold, filler_rule,
            min_commits=torch.zeros_like(threshold, dtype=torch.long), filler_threshold=filler_threshold)
        in_run = _suffix_run(committed_filler | (masked & best_is_filler)) & filler_rule[:, None]
        masked_run = masked & in_run
        frontier = masked_run & (masked_run.flip(-1).cumsum(-1).flip(-1) == 1)
        answer_left = (masked & ~in_run).any(-1)
        eligible = ((masked & ~in_run) | (frontier & ~answer_left[:, None])) & ~commit
        counted = torch.where(answer_left, (commit & ~in_run).sum(-1), commit.sum(-1))
        wanted = torch.ones_like(counted) if min_commits is None else min_commits
        missing = (wanted - counted).clamp(min=0)
        rank = conf.masked_fill(~eligible, -1.0).argsort(dim=-1, descending=True, stable=True).argsort(-1)
        return commit | (eligible & (rank < missing[:, None])), token, conf

    sampler.commit_confident = commit_answer_first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--single", default="200")
    parser.add_argument("--multi", default="100")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--factor", type=float, default=1.0, help="steps: steps per canvas position")
    args, engine_options = parser.parse_known_args()  # the rest go to `mercury-engine eval` (--exact-context, ...)

    if args.variant == "steps":
        patch_requests(lambda r, view, kind: dataclasses.replace(r, steps=max(1, int(r.max_tokens * args.factor))))
    elif args.variant.startswith("server"):
        def as_the_server_asks(r, view, kind):
            if kind != "single" or args.variant == "server-eval":
                return r
            single = bool(view.line_suffix.strip())
            if args.variant == "server-single":
                typed = view.line_prefix.strip()
                single = single or (bool(typed) and not _BLOCK_OPENER.search(typed))
            return dataclasses.replace(r, max_tokens=32 if single and args.variant == "server-single" else 64,
                                       single_line=single)

        patch_requests(as_the_server_asks)
        patch_postprocessing()
    elif args.variant == "int8":
        patch_int8()
    elif args.variant == "answer-first":
        patch_answer_first()
    return engine_main(["eval", "--single", args.single, "--multi", args.multi, "--seed", args.seed, "--common",
                        *engine_options])


if __name__ == "__main__":
    sys.exit(main())
