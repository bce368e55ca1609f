"""Canvas attention's Triton kernels and launcher; the torch reference and the dispatcher are in attention.py.

Imported at the first launch on a CUDA tensor (or by the kernel tests), never by an engine on a CPU.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from .dispatch import FP_FUSION, next_power_of_2

_LOG2_E = 1.4426950408889634
_BLOCK_N = 64
_COMBINE_ROWS = 16
# Split the context across programs until about this many programs per SM run, but never below this many keys
# per split: a canvas step of one sequence has only (query blocks x kv heads) programs otherwise.
_PROGRAMS_PER_SM = 2
_MIN_KEYS_PER_SPLIT = 256


@triton.jit
def _attend_block(
    q, acc, m_i, l_i, k_base, v_base, stride_t, start, end, qk_scale, dims,
    BLOCK_N: tl.constexpr, PRECISION: tl.constexpr,
):
    """Fold keys [start, start + BLOCK_N) ∩ [start, end) into the running (acc, max, sum), base-2 online softmax."""
    keys = start + tl.arange(0, BLOCK_N)
    valid = keys < end
    k = tl.load(k_base + keys[:, None] * stride_t + dims[None, :], mask=valid[:, None], other=0.0)
    v = tl.load(v_base + keys[:, None] * stride_t + dims[None, :], mask=valid[:, None], other=0.0)
    scores = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    scores = tl.where(valid[None, :], scores, float("-inf"))
    # Every block holds at least one valid key (loops stop at the valid length), so m_new is finite.
    m_new = tl.maximum(m_i, tl.max(scores, axis=1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(scores - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
    return acc, m_new, l_i


@triton.jit
def _canvas_attention_kernel(
    q_ptr, k_ctx_ptr, v_ctx_ptr, ctx_len_ptr, ctx_rows_ptr, k_new_ptr, v_new_ptr, new_len_ptr, out_ptr,
    part_ptr, lse_ptr,
    n_batch, n_kv_heads, group, n_canvas, ctx_capacity, qk_scale,
    sq_b, sq_h, sq_c, skc_b, skc_h, skc_t, svc_b, svc_h, svc_t,
    skn_b, skn_h, skn_c, svn_b, svn_h, svn_c, so_b, so_h, so_c,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    SPLIT: tl.constexpr, PRECISION: tl.constexpr, HAS_ROWS: tl.constexpr,
):
    # Program = (query block, batch x kv head, context split). The query block's rows are (query head of the
    # group, canvas position) pairs flattened, so K/V of a kv head are loaded once for its whole group.
    # Split s takes context key blocks s, s + S, s + 2S, ...: balanced for any valid length, which only the
    # device knows.
    pid_m = tl.program_id(0)
    b = (tl.program_id(1) // n_kv_heads).to(tl.int64)
    kv_head = (tl.program_id(1) % n_kv_heads).to(tl.int64)
    split = tl.program_id(2)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < group * n_canvas
    head = kv_head * group + rows // n_canvas
    pos = rows % n_canvas
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(
        q_ptr + b * sq_b + head[:, None] * sq_h + pos[:, None] * sq_c + dims[None, :],
        mask=row_ok[:, None], other=0.0,
    )

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)

    # Lengths past the buffers count as the whole buffer, as in the reference.
    ctx_len = tl.minimum(tl.load(ctx_len_ptr + b).to(tl.int32), ctx_capacity)
    # The context may live in a slot of a shared cache: row b reads slot ctx_rows[b].
    if HAS_ROWS:
        slot = tl.load(ctx_rows_ptr + b).to(tl.int64)
    else:
        slot = b
    k_base = k_ctx_ptr + slot * skc_b + kv_head * skc_h
    v_base = v_ctx_ptr + slot * svc_b + kv_head * svc_h
    for start in range(split * BLOCK_N, ctx_len, tl.num_programs(2) * BLOCK_N):
        acc, m_i, l_i = _attend_block(
            q, acc, m_i, l_i, k_base, v_base, skc_t, start, ctx_len, qk_scale, dims, BLOCK_N, PRECISION
        )
    if split == tl.num_programs(2) - 1:
        new_len = tl.minimum(tl.load(new_len_ptr + b).to(tl.int32), n_canvas)
        kn_base = k_new_ptr + b * skn_b + kv_head * skn_h
        vn_base = v_new_ptr + b * svn_b + kv_head * svn_h
        for start in range(0, new_len, BLOCK_N):
            acc, m_i, l_i = _attend_block(
                q, acc, m_i, l_i, kn_base, vn_base, skn_c, start, new_len, qk_scale, dims, BLOCK_N, PRECISION
            )

    if SPLIT:
        # Partial results of this split, normalised, with their base-2 log-sum-exp for the combine kernel.
        n_heads = n_kv_heads * group
        part_row = ((split * n_batch + b) * n_heads + head) * n_canvas + pos
        has_keys = l_i > 0.0
        out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
        lse = tl.where(has_keys, m_i + tl.log2(tl.where(has_keys, l_i, 1.0)), float("-inf"))
        tl.store(part_ptr + part_row[:, None] * HEAD_DIM + dims[None, :], out, mask=row_ok[:, None])
        tl.store(lse_ptr + part_row, lse, mask=row_ok)
    else:
        out = acc / l_i[:, None]
        o_ptrs = out_ptr + b * so_b + head[:, None] * so_h + pos[:, None] * so_c + dims[None, :]
        tl.store(o_ptrs, out.to(out_ptr.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def _combine_splits_kernel(
    part_ptr, lse_ptr, out_ptr, n_rows, n_heads, n_canvas, n_splits, so_b, so_h, so_c,
    HEAD_DIM: tl.constexpr, BLOCK_R: tl.constexpr,
):
    # A block of (batch, head, canvas position) rows per program: weight each split's output by its share of
    # the softmax, exp2(lse_split - lse_max).
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    row_ok = rows < n_rows
    dims = tl.arange(0, HEAD_DIM)
    lse_max = tl.full([BLOCK_R], float("-inf"), tl.float32)
    for split in range(0, n_splits):
        lse_max = tl.maximum(lse_max, tl.load(lse_ptr + split * n_rows + rows, mask=row_ok, other=0.0))
    total = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, HEAD_DIM], tl.float32)
    for split in range(0, n_splits):
        weight = tl.exp2(tl.load(lse_ptr + split * n_rows + rows, mask=row_ok, other=0.0) - lse_max)
        part = tl.load(
            part_ptr + (split * n_rows + rows)[:, None] * HEAD_DIM + dims[None, :], mask=row_ok[:, None], other=0.0
        )
        total += weight
        acc += part * weight[:, None]
    pos = rows % n_canvas
    head = (rows // n_canvas) % n_heads
    b = rows // (n_canvas * n_heads)
    o_ptrs = out_ptr + (b * so_b + head * so_h + pos * so_c)[:, None] + dims[None, :]
    tl.store(o_ptrs, (acc / total[:, None]).to(out_ptr.dtype.element_ty), mask=row_ok[:, None])


@functools.cache
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _pick_splits(programs: int, ctx_capacity: int, device: torch.device) -> int:
    """How many programs share the context of one (query block, kv head): enough to fill the GPU."""
    if device.type != "cuda":
        return 1
    index = torch.cuda.current_device() if device.index is None else device.index
    target = _PROGRAMS_PER_SM * _sm_count(index)
    by_length = max(1, ctx_capacity // _MIN_KEYS_PER_SPLIT)
    return max(1, min(-(-target // programs), by_length))


def canvas_attention_triton(
    q: torch.Tensor,
    k_ctx: torch.Tensor,
    v_ctx: torch.Tensor,
    ctx_len: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    new_len: torch.Tensor,
    scale: float,
    ctx_rows: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
    num_splits: int | None = None,
) -> torch.Tensor:
    """Triton launch of canvas_attention_reference (flash-style, fp32 accumulation, no host sync).

    `out` may be any [B, H, C, D] view with a contiguous last dimension (e.g. a transpose of [B, C, H, D]);
    `num_splits` overrides how many programs share one context (split-K, combined by a second kernel).
    """
    n_batch, n_heads, n_canvas, head_dim = q.shape
    n_kv_heads, ctx_capacity = k_ctx.shape[1], k_ctx.shape[2]
    if head_dim != next_power_of_2(head_dim) or head_dim < 16:
        raise ValueError(f"canvas_attention_triton needs a power-of-two head_dim >= 16, got {head_dim}")
    if n_heads % n_kv_heads:
        raise ValueError(f"{n_heads} query heads do not split into {n_kv_heads} kv heads")
    for t in (q, k_ctx, v_ctx, k_new, v_new):
        if t.stride(-1) != 1:
            raise ValueError("canvas_attention_triton needs the head dimension contiguous")
    if out is None:
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if ctx_capacity == 0:
        # An empty buffer may have no storage to point at; nothing is read from it either way.
        k_ctx, v_ctx = k_new, v_new
    group = n_heads // n_kv_heads
    rows = group * n_canvas
    block_m = min(64, max(16, next_power_of_2(rows)))
    m_blocks = -(-rows // block_m)
    programs = m_blocks * n_batch * n_kv_heads
    splits = num_splits or _pick_splits(programs, ctx_capacity, q.device)
    if splits > 1:
        part = torch.empty((splits, n_batch, n_heads, n_canvas, head_dim), dtype=torch.float32, device=q.device)
        lse = torch.empty((splits, n_batch, n_heads, n_canvas), dtype=torch.float32, device=q.device)
    else:
        part = lse = out
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    _canvas_attention_kernel[(m_blocks, n_batch * n_kv_heads, splits)](
        q, k_ctx, v_ctx, ctx_len, ctx_len if ctx_rows is None else ctx_rows, k_new, v_new, new_len, out, part, lse,
        n_batch, n_kv_heads, group, n_canvas, ctx_capacity, scale * _LOG2_E,
        q.stride(0), q.stride(1), q.stride(2),
        k_ctx.stride(0), k_ctx.stride(1), k_ctx.stride(2), v_ctx.stride(0), v_ctx.stride(1), v_ctx.stride(2),
        k_new.stride(0), k_new.stride(1), k_new.stride(2), v_new.stride(0), v_new.stride(1), v_new.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        HEAD_DIM=head_dim, BLOCK_M=block_m, BLOCK_N=_BLOCK_N, SPLIT=splits > 1, PRECISION=precision,
        HAS_ROWS=ctx_rows is not None,
        # Four warps spill registers at head_dim 128 on sm_90 (ptxas -v); eight do not.
        num_warps=8 if head_dim >= 128 else 4, enable_fp_fusion=FP_FUSION, num_stages=2,
    )
    if splits > 1:
        n_rows = n_batch * n_heads * n_canvas
        _combine_splits_kernel[(-(-n_rows // _COMBINE_ROWS),)](
            part, lse, out, n_rows, n_heads, n_canvas, splits, out.stride(0), out.stride(1), out.stride(2),
            HEAD_DIM=head_dim, BLOCK_R=_COMBINE_ROWS, num_warps=4, enable_fp_fusion=FP_FUSION,
        )
    return out
