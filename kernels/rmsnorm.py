"""RMSNorm fused with the residual add."""

from __future__ import annotations

import torch

from .dispatch import triton_half_attribute, use_triton


def rms_norm_reference(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (rmsnorm(x + residual) * weight, x + residual); statistics in float32."""
    hidden = x if residual is None else x + residual
    h32 = hidden.float()
    normed = h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + eps)
    return (normed * weight.float()).to(x.dtype), hidden


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    if use_triton(x):
        # The Triton half (and Triton itself) is imported at the first launch on a CUDA tensor.
        from .rmsnorm_triton import rms_norm_triton

        return rms_norm_triton(x, weight, eps, residual)
    return rms_norm_reference(x, weight, eps, residual)


def __getattr__(name: str) -> object:
    """The Triton half's names (rmsnorm.rms_norm_triton, its kernels), imported when first asked for."""
    return triton_half_attribute(__name__, name)
