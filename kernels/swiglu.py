"""SwiGLU activation: silu(gate) * up."""

from __future__ import annotations

import torch

from .dispatch import triton_half_attribute, use_triton


def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up, computed in float32."""
    return (torch.nn.functional.silu(gate.float()) * up.float()).to(gate.dtype)


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    if use_triton(gate):
        # The Triton half (and Triton itself) is imported at the first launch on a CUDA tensor.
        from .swiglu_triton import swiglu_triton

        return swiglu_triton(gate, up)
    return swiglu_reference(gate, up)


def __getattr__(name: str) -> object:
    """The Triton half's names (swiglu.swiglu_triton, its kernels), imported when first asked for."""
    return triton_half_attribute(__name__, name)
