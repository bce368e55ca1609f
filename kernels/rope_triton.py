"""RoPE's Triton kernels and launcher; the torch reference and the dispatcher are in rope.py.

Imported at the first launch on a CUDA tensor (or by the kernel tests), never by an engine on a CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import FP_FUSION, next_power_of_2


@triton.jit
def _rotate_heads(ptr, stride_h, n_heads, c, s, HALF: tl.constexpr, BLOCK_H: tl.constexpr):
    """Rotate all heads of one token in place: rows are heads, columns the first / second half of the dims."""
    heads = tl.arange(0, BLOCK_H)[:, None]
    dims = tl.arange(0, HALF)[None, :]
    first = ptr + heads * stride_h + dims
    inside = heads < n_heads
    x1 = tl.load(first, mask=inside, other=0.0).to(tl.float32)
    x2 = tl.load(first + HALF, mask=inside, other=0.0).to(tl.float32)
    tl.store(first, (x1 * c - x2 * s).to(ptr.dtype.element_ty), mask=inside)
    tl.store(first + HALF, (x2 * c + x1 * s).to(ptr.dtype.element_ty), mask=inside)


@triton.jit
def _rope_kernel(
    q_ptr, k_ptr, cos_ptr, sin_ptr, seq_len, n_q_heads, n_k_heads,
    sq_b, sq_l, sq_h, sk_b, sk_l, sk_h, sc_b, sc_l,
    HALF: tl.constexpr, BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr,
):
    # One program per token: its cos/sin row is loaded once and serves every query and key head.
    token = tl.program_id(0)
    b = (token // seq_len).to(tl.int64)
    pos = (token % seq_len).to(tl.int64)
    dims = tl.arange(0, HALF)[None, :]
    c = tl.load(cos_ptr + b * sc_b + pos * sc_l + dims).to(tl.float32)
    s = tl.load(sin_ptr + b * sc_b + pos * sc_l + dims).to(tl.float32)
    _rotate_heads(q_ptr + b * sq_b + pos * sq_l, sq_h, n_q_heads, c, s, HALF, BLOCK_HQ)
    _rotate_heads(k_ptr + b * sk_b + pos * sk_l, sk_h, n_k_heads, c, s, HALF, BLOCK_HK)


def rope_triton(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton launch of rope_reference; q and k may be strided views (e.g. of a fused QKV projection)."""
    b, seq_len, n_q_heads, d = q.shape
    half = d // 2
    if half != next_power_of_2(half):
        raise ValueError(f"rope_triton needs a power-of-two head_dim / 2, got {half}")
    if q.stride(-1) != 1 or k.stride(-1) != 1:
        raise ValueError("rope_triton rotates in place and needs the head dimension contiguous")
    cos = cos.expand(b, seq_len, half)
    sin = sin.expand(b, seq_len, half)
    if cos.stride(-1) != 1 or sin.stride(-1) != 1 or cos.stride() != sin.stride():
        cos, sin = cos.contiguous(), sin.contiguous()
    _rope_kernel[(b * seq_len,)](
        q, k, cos, sin, seq_len, n_q_heads, k.shape[2],
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        cos.stride(0), cos.stride(1),
        HALF=half, BLOCK_HQ=next_power_of_2(n_q_heads), BLOCK_HK=next_power_of_2(k.shape[2]),
        num_warps=4, enable_fp_fusion=FP_FUSION,
    )
    return q, k
