"""RMSNorm's Triton kernels and launcher; the torch reference and the dispatcher are in rmsnorm.py.

Imported at the first launch on a CUDA tensor (or by the kernel tests), never by an engine on a CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .dispatch import FP_FUSION, next_power_of_2


@triton.jit
def _rms_norm_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr, hidden_ptr,
    n_cols, stride_x, stride_res, stride_out, stride_hidden, eps,
    HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr,
):
    # One program per row; the whole row fits one block (hidden sizes are a few thousand).
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    inside = cols < n_cols
    x = tl.load(x_ptr + row * stride_x + cols, mask=inside, other=0.0)
    if HAS_RESIDUAL:
        # The sum is rounded to the input dtype first, as the reference's x + residual is.
        x = x + tl.load(res_ptr + row * stride_res + cols, mask=inside, other=0.0)
        tl.store(hidden_ptr + row * stride_hidden + cols, x, mask=inside)
    h = x.to(tl.float32)
    inv_rms = tl.rsqrt(tl.sum(h * h, axis=0) / n_cols + eps)
    w = tl.load(w_ptr + cols, mask=inside, other=0.0).to(tl.float32)
    normed = h * inv_rms * w
    tl.store(out_ptr + row * stride_out + cols, normed.to(out_ptr.dtype.element_ty), mask=inside)


def rms_norm_triton(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton launch of rms_norm_reference: one program per row of the last dimension."""
    n_cols = x.shape[-1]
    x2 = x.reshape(-1, n_cols)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    out = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    if residual is None:
        res2, hidden2 = x2, x2
    else:
        res2 = residual.reshape(-1, n_cols)
        if res2.stride(-1) != 1:
            res2 = res2.contiguous()
        hidden2 = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    block = next_power_of_2(n_cols)
    _rms_norm_kernel[(x2.shape[0],)](
        x2, res2, weight, out, hidden2,
        n_cols, x2.stride(0), res2.stride(0), out.stride(0), hidden2.stride(0), eps,
        HAS_RESIDUAL=residual is not None, BLOCK=block, num_warps=min(16, max(1, block // 256)),
        enable_fp_fusion=FP_FUSION,
    )
    hidden = x if residual is None else hidden2.view(x.shape)
    return out.view(x.shape), hidden
