"""Commit selection for one denoising step: threshold, at least one per row, filler only from the right edge."""

from __future__ import annotations

import torch

from .dispatch import triton_half_attribute, use_triton


def _suffix_run(flags: torch.Tensor) -> torch.Tensor:
    """True where the flag holds at this position and at every position to its right."""
    return flags.flip(-1).to(torch.int32).cumprod(-1).flip(-1).bool()


def commit_confident_reference(
    p_best: torch.Tensor,
    id_best: torch.Tensor,
    p_nonfiller: torch.Tensor,
    id_nonfiller: torch.Tensor,
    best_is_filler: torch.Tensor,
    masked: torch.Tensor,
    committed_filler: torch.Tensor,
    threshold: torch.Tensor,
    filler_rule: torch.Tensor,
    min_commits: torch.Tensor | None = None,
    filler_threshold: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose which masked canvas positions to commit this step. All inputs are [B, C] except threshold,
    filler_rule, min_commits (at least this many commits per row where positions allow; default 1) and
    filler_threshold (default: threshold), which are [B].

    With the filler rule, filler (pad / end-of-text) may only be committed as a contiguous run growing from the
    right edge of the canvas; elsewhere a position's candidate is its best non-filler token. This keeps the most
    confident prediction of a weak model (filler at the canvas end) from flooding the canvas. The run grows by
    positions whose filler confidence passes `filler_threshold`: a model's filler confidence falls towards the
    answer's end, so at the token threshold the run grows a position or two per step and a short answer in a wide
    canvas spends most of its steps on filler. Returns (commit [B, C] bool, token [B, C], confidence [B, C]).
    """
    rule = filler_rule[:, None]
    in_run = _suffix_run(committed_filler | (masked & best_is_filler)) & rule
    token = torch.where(in_run | ~rule, id_best, id_nonfiller)
    conf = torch.where(in_run | ~rule, p_best, p_nonfiller)
    passes = conf >= threshold[:, None]
    run_threshold = threshold if filler_threshold is None else torch.minimum(threshold, filler_threshold)
    passes_run = conf >= run_threshold[:, None]

    run_commit = _suffix_run(in_run & (committed_filler | (masked & passes_run))) & masked
    commit = run_commit | (~in_run & masked & passes)

    # At least min_commits per row that still has masks: the most confident eligible positions. Inside the run
    # only the frontier (its rightmost masked position) is eligible, so the run stays contiguous.
    masked_run = masked & in_run
    frontier = masked_run & (masked_run.flip(-1).cumsum(-1).flip(-1) == 1)
    eligible = ((masked & ~in_run) | frontier) & ~commit
    if min_commits is None:
        min_commits = torch.ones_like(threshold, dtype=torch.long)
    missing = (min_commits - commit.sum(-1)).clamp(min=0)
    order = conf.masked_fill(~eligible, -1.0).argsort(dim=-1, descending=True, stable=True)
    rank = order.argsort(-1)
    forced = eligible & (rank < missing[:, None])
    return commit | forced, token, conf


def commit_confident(
    *args: torch.Tensor, min_commits: torch.Tensor | None = None, filler_threshold: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere (same arguments as the reference)."""
    if use_triton(args[0]):
        # The Triton half (and Triton itself) is imported at the first launch on a CUDA tensor.
        from .commit_triton import commit_confident_triton

        return commit_confident_triton(*args, min_commits=min_commits, filler_threshold=filler_threshold)
    return commit_confident_reference(*args, min_commits=min_commits, filler_threshold=filler_threshold)


def __getattr__(name: str) -> object:
    """The Triton half's names (commit.commit_confident_triton, its kernels), imported when first asked for."""
    return triton_half_attribute(__name__, name)
