"""SwiGLU's Triton kernels and launcher; the torch reference and the dispatcher are in swiglu.py.

Imported at the first launch on a CUDA tensor (or by the kernel tests), never by an engine on a CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import FP_FUSION

_BLOCK = 1024


@triton.jit
def _swiglu_kernel(
    gate_ptr, up_ptr, out_ptr, n_cols, stride_gate, stride_up, stride_out, BLOCK: tl.constexpr
):
    # Grid: (row, column block). Row strides let gate and up be the two halves of one fused projection.
    row = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = cols < n_cols
    g = tl.load(gate_ptr + row * stride_gate + cols, mask=inside, other=0.0).to(tl.float32)
    u = tl.load(up_ptr + row * stride_up + cols, mask=inside, other=0.0).to(tl.float32)
    out = g * tl.sigmoid(g) * u
    tl.store(out_ptr + row * stride_out + cols, out.to(out_ptr.dtype.element_ty), mask=inside)


def swiglu_triton(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Triton launch of swiglu_reference; gate and up may be column slices of one [..., 2I] tensor."""
    n_cols = gate.shape[-1]
    gate2 = gate.reshape(-1, n_cols)
    up2 = up.reshape(-1, n_cols)
    if gate2.stride(-1) != 1 or up2.stride(-1) != 1:
        gate2, up2 = gate2.contiguous(), up2.contiguous()
    out = torch.empty(gate2.shape, dtype=gate.dtype, device=gate.device)
    grid = (gate2.shape[0], -(-n_cols // _BLOCK))
    _swiglu_kernel[grid](
        gate2, up2, out, n_cols, gate2.stride(0), up2.stride(0), out.stride(0), BLOCK=_BLOCK, num_warps=4,
        enable_fp_fusion=FP_FUSION,
    )
    return out.view(gate.shape)
