"""The bundled model's evaluation under engine variants that were measured and not kept (bench/RESULTS.md).

    python bench/eval_variants.py VARIANT [--single 200] [--multi 100] [--seed 0] [--factor 1.0]

Each variant changes one thing around `mercury-engine eval` (same held-out holes, same table) by patching the
engine in this process only:

    base            the engine as it ships
    frontier        forced commits go to the leftmost masked positions (confidence decayed by --factor per
                    position from the frontier; 0 = strictly left to right) instead of the most confident ones
    steps           step budget = canvas x --factor instead of canvas / 2
    server          single-line holes asked the way the language server asks (canvas 64, multi-line unless text
                    follows the cursor), its post-processing applied, against `server-eval` (the evaluation's own
                    single-line request with the same post-processing)
    server-eval     see server
    server-single   as server, but one line (canvas 32) after typed text unless a block opener ends it
    exact-context   every step recomputes the whole window with full bidirectional attention (no chunked prefix,
                    no cached context)
    int8            dynamic int8 quantization of the transformer layers' linear maps (per channel)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings

import torch

import mercury_lsp.engine.evaluate as evaluate
import mercury_lsp.engine.infill as infill
import mercury_lsp.engine.sampler as sampler
from mercury_lsp.engine.cli import main as engine_main
from mercury_lsp.kernels.commit import _suffix_run
from mercury_lsp.postprocess import _BLOCK_OPENER, CursorView, postprocess

VARIANTS = ("base", "frontier", "steps", "server", "server-eval", "server-single", "exact-context", "int8")


def frontier_commits(decay: float):
    """commit_confident_reference with the forced commits ranked by confidence x decay^(distance from frontier)."""

    def commit(p_best, id_best, p_nf, id_nf, best_is_filler, masked, committed_filler, threshold, filler_rule,
               min_commits=None):
        rule = filler_rule[:, None]
        in_run = _suffix_run(committed_filler | (masked & best_is_filler)) & rule
        token = torch.where(in_run | ~rule, id_best, id_nf)
        conf = torch.where(in_run | ~rule, p_best, p_nf)
        passes = conf >= threshold[:, None]
        run_commit = _suffix_run(in_run & (committed_filler | (masked & passes))) & masked
        commit = run_commit | (~in_run & masked & passes)
        masked_run = masked & in_run
        run_frontier = masked_run & (masked_run.flip(-1).cumsum(-1).flip(-1) == 1)
        content = masked & ~in_run
        eligible = (content | run_frontier) & ~commit
        missing = (min_commits - commit.sum(-1)).clamp(min=0)
        position = torch.arange(conf.shape[-1], device=conf.device).expand_as(conf)
        first = torch.where(content, position, conf.shape[-1]).min(-1, keepdim=True).values
        distance = (position - first).clamp(min=0).float()
        score = torch.where(content, conf * decay**distance, conf)
        rank = score.masked_fill(~eligible, -1.0).argsort(dim=-1, descending=True, stable=True).argsort(-1)
        return commit | (eligible & (rank < missing[:, None])), token, conf

    return commit


def patch_requests(change) -> None:
    """Rewrite each hole's request with change(request, view, kind)."""
    original = evaluate.hole_request

    def request(prefix: str, suffix: str, kind: str):
        return change(original(prefix, suffix, kind), CursorView.around(prefix, suffix), kind)

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


def patch_exact_context() -> None:
    original_step = infill.InfillEngine.step

    def step(self, jobs):
        for job in jobs:
            if not job.done:
                job.canvas.needs_refresh = True  # every step takes the refresh path, which is replaced below
        original_step(self, jobs)

    def group_forward(self, job):
        ids = torch.tensor([job.prefix_ids + job.canvas.ids.tolist() + job.suffix_ids], device=self.device)
        hidden, _ = self.model.forward_window(ids)
        job.context_version += 1
        return self.model.logits(hidden[0, self._canvas_rows(job, offset=len(job.prefix_ids))])

    infill.InfillEngine.step = step
    infill.InfillEngine._group_forward = group_forward


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--single", default="200")
    parser.add_argument("--multi", default="100")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--factor", type=float, default=1.0, help="frontier: decay; steps: steps per canvas slot")
    args = parser.parse_args()

    if args.variant == "frontier":
        sampler.commit_confident = frontier_commits(args.factor)
    elif args.variant == "steps":
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
    elif args.variant == "exact-context":
        patch_exact_context()
    elif args.variant == "int8":
        patch_int8()
    return engine_main(["eval", "--single", args.single, "--multi", args.multi, "--seed", args.seed, "--common"])


if __name__ == "__main__":
    sys.exit(main())
