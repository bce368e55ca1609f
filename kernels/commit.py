"""Commit selection for one denoising step: threshold, at least one per row, filler only from the right edge."""

from __future__ import annotations

import torch

from .dispatch import FP_FUSION, next_power_of_2, tl, triton_jit, use_triton


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


@triton_jit
def _suffix_run_row(flags, offs, inside):
    """In-register _suffix_run of one row: true right of the last position whose flag is false."""
    last_false = tl.max(tl.where(~flags & inside, offs, -1), axis=0)
    return offs > last_false


@triton_jit
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


def commit_confident(
    *args: torch.Tensor, min_commits: torch.Tensor | None = None, filler_threshold: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere (same arguments as the reference)."""
    if use_triton(args[0]):
        return commit_confident_triton(*args, min_commits=min_commits, filler_threshold=filler_threshold)
    return commit_confident_reference(*args, min_commits=min_commits, filler_threshold=filler_threshold)
