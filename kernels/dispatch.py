"""Choose between a Triton kernel and its torch reference for the tensors at hand."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU install carries no Triton; the references serve there
    triton = None
    tl = None

TRITON_AVAILABLE = triton is not None
# Fused multiply-add in every kernel, as the GPU figures in bench/RESULTS.md were measured. Triton 3.9 warns that
# its default turns to off in 3.10: each launch names the setting instead of following a changing default.
FP_FUSION = True


def triton_jit(fn: Callable) -> Callable:
    """triton.jit when Triton is installed; without it the plain function, which no dispatcher launches."""
    return triton.jit(fn) if TRITON_AVAILABLE else fn


def use_triton(tensor: torch.Tensor) -> bool:
    """True when Triton is installed, the tensor lives on CUDA and MERCURY_KERNELS does not force the reference."""
    if os.environ.get("MERCURY_KERNELS", "").lower() == "reference":
        return False
    return TRITON_AVAILABLE and tensor.is_cuda


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (block sizes must be powers of two)."""
    return 1 << max(n - 1, 0).bit_length()
