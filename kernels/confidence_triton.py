"""Confidence's Triton kernels and launcher; the torch reference and the dispatcher are in confidence.py.

Imported at the first launch on a CUDA tensor (or by the kernel tests), never by an engine on a CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import FP_FUSION, next_power_of_2

_BLOCK_V = 2048
# Each program reads this many blocks of one row: 152k-token vocabularies give ~10 programs per canvas row,
# enough to fill the GPU with bandwidth instead of leaving one latency-bound program per row.
_CHUNK_BLOCKS = 8


@triton.jit
def _confidence_partial_kernel(
    logits_ptr, filler_ptr, part_max_ptr, part_sum_ptr, part_id_ptr, part_nf_ptr, part_nf_id_ptr,
    vocab, stride_row, n_filler, chunk, n_chunks, BLOCK_V: tl.constexpr,
):
    # Program = (row, vocabulary chunk), one pass over the chunk. Each lane keeps its own running max, rescaled
    # exp-sum and best logit with and without filler, so the loop has no cross-lane reduction; the lanes merge
    # once at the end into this chunk's partial. Probabilities are never written.
    row = tl.program_id(0).to(tl.int64)
    part = row * n_chunks + tl.program_id(1)
    chunk_start = tl.program_id(1) * chunk
    chunk_end = tl.minimum(chunk_start + chunk, vocab)
    base = logits_ptr + row * stride_row
    offs = tl.arange(0, BLOCK_V)
    lane_max = tl.full([BLOCK_V], float("-inf"), tl.float32)
    lane_sum = tl.zeros([BLOCK_V], tl.float32)
    lane_id = tl.zeros([BLOCK_V], tl.int32)
    lane_nf = tl.full([BLOCK_V], float("-inf"), tl.float32)
    lane_nf_id = tl.zeros([BLOCK_V], tl.int32)
    for start in range(chunk_start, chunk_end, BLOCK_V):
        idx = start + offs
        x = tl.load(base + idx, mask=idx < chunk_end, other=float("-inf")).to(tl.float32)
        new_max = tl.maximum(lane_max, x)
        # A lane that has seen only padding keeps max -inf; shift by 0 there instead of by -inf (NaN).
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        lane_sum = lane_sum * tl.exp(lane_max - shift) + tl.exp(x - shift)
        # Strict ">" keeps each lane's first index of its maximum.
        lane_id = tl.where(x > lane_max, idx, lane_id)
        lane_max = new_max
        is_filler = idx < 0
        for f in range(0, n_filler):
            is_filler = is_filler | (idx == tl.load(filler_ptr + f))
        x_nf = tl.where(is_filler, float("-inf"), x)
        lane_nf_id = tl.where(x_nf > lane_nf, idx, lane_nf_id)
        lane_nf = tl.maximum(lane_nf, x_nf)
    _merge_store(
        lane_max, lane_sum, lane_id, lane_nf, lane_nf_id, vocab,
        part_max_ptr + part, part_sum_ptr + part, part_id_ptr + part, part_nf_ptr + part, part_nf_id_ptr + part,
    )


@triton.jit
def _merge_store(run_max, run_sum, run_id, run_nf, run_nf_id, vocab, max_ptr, sum_ptr, id_ptr, nf_ptr, nf_id_ptr):
    """Merge (max, exp-sum, first argmax, best non-filler, its first index) across lanes and store the result."""
    row_max = tl.max(run_max, axis=0)
    shift = tl.where(row_max == float("-inf"), 0.0, row_max)
    tl.store(max_ptr, row_max)
    tl.store(sum_ptr, tl.sum(run_sum * tl.exp(run_max - shift), axis=0))
    # The first index overall is the smallest of the first indices that reach the maximum.
    tl.store(id_ptr, tl.min(tl.where(run_max == row_max, run_id, vocab), axis=0))
    best_nf = tl.max(run_nf, axis=0)
    tl.store(nf_ptr, best_nf)
    tl.store(nf_id_ptr, tl.min(tl.where(run_nf == best_nf, run_nf_id, vocab), axis=0))


@triton.jit
def _confidence_merge_kernel(
    part_max_ptr, part_sum_ptr, part_id_ptr, part_nf_ptr, part_nf_id_ptr,
    p_best_ptr, id_best_ptr, p_nf_ptr, id_nf_ptr, vocab, n_chunks, BLOCK_CHUNKS: tl.constexpr,
):
    # One program per row merges its chunks' partials, then turns logits into probabilities.
    row = tl.program_id(0).to(tl.int64)
    chunks = tl.arange(0, BLOCK_CHUNKS)
    ok = chunks < n_chunks
    at = row * n_chunks + chunks
    run_max = tl.load(part_max_ptr + at, mask=ok, other=float("-inf"))
    run_sum = tl.load(part_sum_ptr + at, mask=ok, other=0.0)
    run_id = tl.load(part_id_ptr + at, mask=ok, other=0)
    run_nf = tl.load(part_nf_ptr + at, mask=ok, other=float("-inf"))
    run_nf_id = tl.load(part_nf_id_ptr + at, mask=ok, other=0)
    row_max = tl.max(run_max, axis=0)
    row_sum = tl.sum(run_sum * tl.exp(run_max - row_max), axis=0)
    best_nf = tl.max(run_nf, axis=0)
    tl.store(p_best_ptr + row, 1.0 / row_sum)
    tl.store(id_best_ptr + row, tl.min(tl.where(run_max == row_max, run_id, vocab), axis=0).to(tl.int64))
    tl.store(p_nf_ptr + row, tl.exp(best_nf - row_max) / row_sum)
    tl.store(id_nf_ptr + row, tl.min(tl.where(run_nf == best_nf, run_nf_id, vocab), axis=0).to(tl.int64))


def confidence_triton(
    logits: torch.Tensor, filler_ids: torch.Tensor, block_v: int = _BLOCK_V, blocks_per_chunk: int = _CHUNK_BLOCKS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton launch of confidence_reference: (row, vocabulary chunk) programs, then one merge per row."""
    n_rows, vocab = logits.shape
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    if filler_ids.numel() == 0:
        # An empty tensor may have no storage to point at; the kernel reads none of it.
        filler_ids = torch.zeros(1, dtype=torch.long, device=logits.device)
        n_filler = 0
    else:
        n_filler = filler_ids.numel()
    chunk = block_v * blocks_per_chunk
    n_chunks = -(-vocab // chunk)
    device = logits.device
    part_max, part_sum, part_nf = (torch.empty((n_rows, n_chunks), device=device) for _ in range(3))
    part_id, part_nf_id = (torch.empty((n_rows, n_chunks), dtype=torch.int32, device=device) for _ in range(2))
    _confidence_partial_kernel[(n_rows, n_chunks)](
        logits, filler_ids, part_max, part_sum, part_id, part_nf, part_nf_id,
        vocab, logits.stride(0), n_filler, chunk, n_chunks, BLOCK_V=block_v, num_warps=8,
        enable_fp_fusion=FP_FUSION,
    )
    p_best, p_nf = (torch.empty(n_rows, dtype=torch.float32, device=device) for _ in range(2))
    id_best, id_nf = (torch.empty(n_rows, dtype=torch.int64, device=device) for _ in range(2))
    _confidence_merge_kernel[(n_rows,)](
        part_max, part_sum, part_id, part_nf, part_nf_id, p_best, id_best, p_nf, id_nf, vocab, n_chunks,
        BLOCK_CHUNKS=next_power_of_2(n_chunks), num_warps=1, enable_fp_fusion=FP_FUSION,
    )
    return p_best, id_best, p_nf, id_nf
