"""Choose between a Triton kernel and its torch reference for the tensors at hand.

Triton is imported only where a kernel is about to run: each op's module (`rmsnorm`) holds the reference and the
dispatcher, its Triton half (`rmsnorm_triton`) the kernels and launcher, imported at the first launch on a CUDA
tensor. An engine on a CPU never launches one, and importing Triton alone keeps ~70 MB resident
(bench/RESULTS.md, engine memory).
"""

from __future__ import annotations

import functools
import importlib
import os

import torch

# Fused multiply-add in every kernel, as the GPU figures in bench/RESULTS.md were measured. Triton 3.9 warns that
# its default turns to off in 3.10: each launch names the setting instead of following a changing default.
FP_FUSION = True


@functools.cache
def triton_installed() -> bool:
    """True when Triton imports (the CPU install carries none). Imports it: ask only where a kernel may run."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def __getattr__(name: str) -> object:
    # TRITON_AVAILABLE (tests, benchmarks) is answered when read, so that importing this module imports no Triton.
    if name == "TRITON_AVAILABLE":
        return triton_installed()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def use_triton(tensor: torch.Tensor) -> bool:
    """True when the tensor lives on CUDA, Triton is installed and MERCURY_KERNELS does not force the reference."""
    if os.environ.get("MERCURY_KERNELS", "").lower() == "reference":
        return False
    return tensor.is_cuda and triton_installed()


def triton_half_attribute(module: str, name: str) -> object:
    """`name` from a kernel module's Triton half (`...rmsnorm` -> `...rmsnorm_triton`), imported on first use, so
    that `rmsnorm.rms_norm_triton` and `rmsnorm._rms_norm_kernel` read as before. Dunder probes (`__all__`,
    `__path__`) are answered without importing Triton."""
    if name.startswith("__"):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{module}_triton"), name)


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (block sizes must be powers of two)."""
    return 1 << max(n - 1, 0).bit_length()
