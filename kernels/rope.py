"""Rotary position embedding (rotate-half convention of Qwen2 / LLaMA) applied to Q and K."""

from __future__ import annotations

import torch

from .dispatch import triton_half_attribute, use_triton


def rope_reference(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate q [B, L, H, D] and k [B, L, Hkv, D] in place; cos/sin are [B, L, D/2] for each token's position."""
    half = q.shape[-1] // 2
    c = cos.unsqueeze(2).to(torch.float32)
    s = sin.unsqueeze(2).to(torch.float32)
    for t in (q, k):
        x1 = t[..., :half].float()
        x2 = t[..., half:].float()
        r1 = x1 * c - x2 * s
        r2 = x2 * c + x1 * s
        t[..., :half] = r1.to(t.dtype)
        t[..., half:] = r2.to(t.dtype)
    return q, k


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    if use_triton(q):
        # The Triton half (and Triton itself) is imported at the first launch on a CUDA tensor.
        from .rope_triton import rope_triton

        return rope_triton(q, k, cos, sin)
    return rope_reference(q, k, cos, sin)


def __getattr__(name: str) -> object:
    """The Triton half's names (rope.rope_triton, its kernels), imported when first asked for."""
    return triton_half_attribute(__name__, name)
