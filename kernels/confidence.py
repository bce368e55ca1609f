"""Per-row softmax confidence over the vocabulary: best token, and best token that is not filler."""

from __future__ import annotations

import torch

from .dispatch import tl, triton_jit, use_triton

_BLOCK_V = 2048


def confidence_reference(
    logits: torch.Tensor, filler_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits [N, V] -> (p_best, id_best, p_best_nonfiller, id_best_nonfiller), probabilities over the full vocab."""
    logits = logits.float()
    probs = logits.softmax(-1)
    p_best, id_best = probs.max(-1)
    no_filler = probs.index_fill(-1, filler_ids, -1.0) if filler_ids.numel() else probs
    p_nf, id_nf = no_filler.max(-1)
    return p_best, id_best, p_nf, id_nf


@triton_jit
def _confidence_kernel(
    logits_ptr, filler_ptr, p_best_ptr, id_best_ptr, p_nf_ptr, id_nf_ptr,
    vocab, stride_row, n_filler, BLOCK_V: tl.constexpr,
):
    # One program per row, one pass over the vocabulary. Each lane keeps its own running max, rescaled exp-sum
    # and best logit with and without filler, so the loop has no cross-lane reduction; lanes merge at the end.
    # Probabilities are never written.
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * stride_row
    offs = tl.arange(0, BLOCK_V)
    lane_max = tl.full([BLOCK_V], float("-inf"), tl.float32)
    lane_sum = tl.zeros([BLOCK_V], tl.float32)
    lane_best_id = tl.zeros([BLOCK_V], tl.int32)
    lane_nf = tl.full([BLOCK_V], float("-inf"), tl.float32)
    lane_nf_id = tl.zeros([BLOCK_V], tl.int32)
    for start in range(0, vocab, BLOCK_V):
        idx = start + offs
        x = tl.load(base + idx, mask=idx < vocab, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(lane_max, x)
        # A lane that has seen only padding keeps max -inf; shift by 0 there instead of by -inf (NaN).
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        lane_sum = lane_sum * tl.exp(lane_max - shift) + tl.exp(x - shift)
        # Strict ">" keeps each lane's first index of its maximum.
        lane_best_id = tl.where(x > lane_max, idx, lane_best_id)
        lane_max = new_max
        is_filler = idx < 0
        for f in range(0, n_filler):
            is_filler = is_filler | (idx == tl.load(filler_ptr + f))
        x_nf = tl.where(is_filler, float("-inf"), x)
        lane_nf_id = tl.where(x_nf > lane_nf, idx, lane_nf_id)
        lane_nf = tl.maximum(lane_nf, x_nf)
    row_max = tl.max(lane_max, axis=0)
    row_sum = tl.sum(lane_sum * tl.exp(lane_max - row_max), axis=0)
    # The first index overall is the smallest of the lanes' first indices that reach the maximum.
    best_id = tl.min(tl.where(lane_max == row_max, lane_best_id, vocab), axis=0)
    best_nf = tl.max(lane_nf, axis=0)
    best_nf_id = tl.min(tl.where(lane_nf == best_nf, lane_nf_id, vocab), axis=0)
    tl.store(p_best_ptr + row, 1.0 / row_sum)
    tl.store(id_best_ptr + row, best_id.to(tl.int64))
    tl.store(p_nf_ptr + row, tl.exp(best_nf - row_max) / row_sum)
    tl.store(id_nf_ptr + row, best_nf_id.to(tl.int64))


def confidence_triton(
    logits: torch.Tensor, filler_ids: torch.Tensor, block_v: int = _BLOCK_V
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton launch of confidence_reference: one program per row (canvas rows only, so N is small)."""
    n_rows, vocab = logits.shape
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    p_best = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    p_nf = torch.empty_like(p_best)
    id_best = torch.empty(n_rows, dtype=torch.int64, device=logits.device)
    id_nf = torch.empty_like(id_best)
    _confidence_kernel[(n_rows,)](
        logits, filler_ids, p_best, id_best, p_nf, id_nf,
        vocab, logits.stride(0), filler_ids.numel(), BLOCK_V=block_v, num_warps=8,
    )
    return p_best, id_best, p_nf, id_nf


def confidence(
    logits: torch.Tensor, filler_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    if use_triton(logits):
        return confidence_triton(logits, filler_ids)
    return confidence_reference(logits, filler_ids)
