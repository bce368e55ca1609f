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
    # One program per row, one pass over the vocabulary: a running max and rescaled exp-sum (online softmax)
    # plus the running best logit with and without filler. Probabilities are never written.
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * stride_row
    offs = tl.arange(0, BLOCK_V)
    run_max = float("-inf")
    run_sum = 0.0
    best = float("-inf")
    best_id = 0
    best_nf = float("-inf")
    best_nf_id = 0
    for start in range(0, vocab, BLOCK_V):
        idx = start + offs
        x = tl.load(base + idx, mask=idx < vocab, other=float("-inf")).to(tl.float32)
        block_max = tl.max(x, axis=0)
        new_max = tl.maximum(run_max, block_max)
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(tl.exp(x - new_max), axis=0)
        run_max = new_max
        # Strict ">" keeps the first index on ties across blocks; tl.argmax keeps the first inside one.
        best_id = tl.where(block_max > best, start + tl.argmax(x, axis=0), best_id)
        best = tl.maximum(best, block_max)
        is_filler = idx < 0
        for f in range(0, n_filler):
            is_filler = is_filler | (idx == tl.load(filler_ptr + f))
        x_nf = tl.where(is_filler, float("-inf"), x)
        block_nf_max = tl.max(x_nf, axis=0)
        best_nf_id = tl.where(block_nf_max > best_nf, start + tl.argmax(x_nf, axis=0), best_nf_id)
        best_nf = tl.maximum(best_nf, block_nf_max)
    tl.store(p_best_ptr + row, tl.exp(best - run_max) / run_sum)
    tl.store(id_best_ptr + row, best_id.to(tl.int64))
    tl.store(p_nf_ptr + row, tl.exp(best_nf - run_max) / run_sum)
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
