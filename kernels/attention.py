"""Attention of canvas queries over [cached context keys/values + canvas keys/values], bidirectional, GQA."""

from __future__ import annotations

import torch

from .dispatch import triton_half_attribute, use_triton


def canvas_attention_reference(
    q: torch.Tensor,
    k_ctx: torch.Tensor,
    v_ctx: torch.Tensor,
    ctx_len: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    new_len: torch.Tensor,
    scale: float,
    ctx_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """q [B, H, C, D]; k/v_ctx [S, Hkv, T, D] valid up to ctx_len[b] in row ctx_rows[b] (row b when None);
    k/v_new [B, Hkv, C, D] valid up to new_len[b].

    Every query attends to all valid keys of its row (no causal mask). Returns [B, H, C, D].

    Row by row, over the valid keys only: the batch's contexts are never gathered into one tensor at its longest
    length. A short window (a canvas) over a float32 slot scores its queries against the slot's keys where they
    are, since its [H, C, T] scores are smaller than a copy of the [2, Hkv, T, D] keys/values. A long one (a prefix
    tail and suffix), or a bfloat16 slot, which is read as float32 anyway, copies the row's valid keys once beside
    its own for SDPA's tiled kernel, which never materialises the scores.
    """
    batch, heads, canvas, dim = q.shape
    kv_heads = k_new.shape[1]
    # Grouped-query attention: the query heads that share a key head become one [group * C, D] block of it.
    grouped = q.float().reshape(batch, kv_heads, heads // kv_heads * canvas, dim)
    rows = range(batch) if ctx_rows is None else ctx_rows.tolist()
    lengths = ctx_len.clamp(max=k_ctx.shape[2]).tolist()
    out = torch.zeros_like(grouped)
    for b, (row, n_ctx, n_new) in enumerate(zip(rows, lengths, new_len.tolist())):
        if n_ctx + n_new == 0:
            continue
        k_c, v_c, k_n, v_n = k_ctx[row, :, :n_ctx], v_ctx[row, :, :n_ctx], k_new[b, :, :n_new], v_new[b, :, :n_new]
        if k_c.dtype == torch.float32 and heads * canvas <= 2 * kv_heads * dim:
            scaled = grouped[b] * scale
            scores = torch.cat([scaled @ k_c.mT, scaled @ k_n.float().mT], dim=-1)
            weights = scores.softmax(dim=-1)
            out[b] = weights[..., :n_ctx] @ v_c + weights[..., n_ctx:] @ v_n.float()
        else:
            # [1, H, C, D]: SDPA's tiled CPU kernel takes four dimensions (three fall back to full scores).
            keys, values = torch.cat([k_c, k_n], dim=1).float()[None], torch.cat([v_c, v_n], dim=1).float()[None]
            out[b] = torch.nn.functional.scaled_dot_product_attention(
                q[b : b + 1].float(), keys, values, scale=scale, enable_gqa=kv_heads != heads,
            ).reshape_as(out[b])
    return out.reshape(batch, heads, canvas, dim).to(q.dtype)


def canvas_attention(
    q: torch.Tensor,
    k_ctx: torch.Tensor,
    v_ctx: torch.Tensor,
    ctx_len: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    new_len: torch.Tensor,
    scale: float,
    ctx_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    if use_triton(q):
        # The Triton half (and Triton itself) is imported at the first launch on a CUDA tensor.
        from .attention_triton import canvas_attention_triton

        return canvas_attention_triton(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale, ctx_rows)
    return canvas_attention_reference(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale, ctx_rows)


def __getattr__(name: str) -> object:
    """The Triton half's names (attention.canvas_attention_triton, its kernels), imported when first asked for."""
    return triton_half_attribute(__name__, name)
