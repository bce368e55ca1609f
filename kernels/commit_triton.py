"""Commit selection's Triton kernels and launcher; the torch reference and the dispatcher are in commit.py.

Imported at the first launch on a CUDA tensor (or by the kernel tests), never by an engine on a CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import FP_FUSION, next_power_of_2


@triton.jit
def _suffix_run_row(flags, offs, inside):
    """In-register _suffix_run of one row: true right of the last position whose flag is false."""
    last_false = tl.max(tl.where(~flags & inside, offs, -1), axis=0)
    return offs > last_false


@triton.jit
def _commit_kernel(
    p_best_ptr, id_best_ptr, p_nf_ptr, id_nf_ptr, is_filler_ptr, masked_ptr, committed_ptr,
    threshold_ptr, filler_threshold_ptr, rule_ptr, min_commits_ptr, commit_ptr, token_ptr, conf_ptr, n_cols,
    HAS_MIN_COMMITS: tl.constexpr, BLOCK_C: tl.constexpr,
):
    # One program per row holds the whole canvas in registers; the steps mirror commit_confident_reference.
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK_C)
    inside = offs < n_cols
    at = row * n_cols + offs
    p_best = tl.load(p_best_ptr + at, mask=inside, other=0.0)
    p_nf = tl.load(p_nf_ptr + at, mask=inside, other=0.0)
    id_best = tl.load(id_best_ptr + at, mask=inside, other=0)
    id_nf = tl.load(id_nf_ptr + at, mask=inside, other=0)
    is_filler = tl.load(is_filler_ptr + at, mask=inside, other=0) != 0
    masked = tl.load(masked_ptr + at, mask=inside, other=0) != 0
    committed = tl.load(committed_ptr + at, mask=inside, other=0) != 0
    threshold = tl.load(threshold_ptr + row)
    run_threshold = tl.minimum(threshold, tl.load(filler_threshold_ptr + row))
    rule = tl.load(rule_ptr + row) != 0

    in_run = _suffix_run_row(committed | (masked & is_filler), offs, inside) & rule
    use_best = in_run | ~rule
    token = tl.where(use_best, id_best, id_nf)
    conf = tl.where(use_best, p_best, p_nf)
    passes = conf >= threshold
    run_commit = _suffix_run_row(in_run & (committed | (masked & (conf >= run_threshold))), offs, inside) & masked
    commit = run_commit | (~in_run & masked & passes)

    masked_run = masked & in_run
    frontier = masked_run & (offs == tl.max(tl.where(masked_run, offs, -1), axis=0))
    eligible = ((masked & ~in_run) | frontier) & ~commit
    wanted = 1
    if HAS_MIN_COMMITS:
        wanted = tl.load(min_commits_ptr + row).to(tl.int32)
    missing = tl.maximum(wanted - tl.sum(commit.to(tl.int32), axis=0), 0)
    # Take the most confident eligible position `missing` times; argmax keeps the lowest index on ties,
    # as the reference's stable descending sort does.
    for _ in range(0, missing):
        best = tl.argmax(tl.where(eligible, conf, -1.0), axis=0)
        take = (offs == best) & eligible
        commit = commit | take
        eligible = eligible & ~take
    tl.store(commit_ptr + at, commit, mask=inside)
    tl.store(token_ptr + at, token, mask=inside)
    tl.store(conf_ptr + at, conf, mask=inside)


def commit_confident_triton(
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
    """Triton launch of commit_confident_reference: one program per row, the row (C <= a few thousand) in registers."""
    b, c = p_best.shape
    rows = [t.contiguous() for t in (p_best, id_best, p_nonfiller, id_nonfiller)]
    flags = [t.contiguous() for t in (best_is_filler, masked, committed_filler)]
    commit = torch.empty((b, c), dtype=torch.bool, device=p_best.device)
    token = torch.empty((b, c), dtype=id_best.dtype, device=p_best.device)
    conf = torch.empty((b, c), dtype=p_best.dtype, device=p_best.device)
    _commit_kernel[(b,)](
        *rows, *flags, threshold.contiguous(),
        (threshold if filler_threshold is None else filler_threshold).contiguous(), filler_rule.contiguous(),
        threshold if min_commits is None else min_commits.contiguous(), commit, token, conf, c,
        HAS_MIN_COMMITS=min_commits is not None, BLOCK_C=next_power_of_2(c), num_warps=4,
        enable_fp_fusion=FP_FUSION,
    )
    return commit, token, conf
