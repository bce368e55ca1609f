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
    """
    if ctx_rows is not None:
        k_ctx, v_ctx = k_ctx.index_select(0, ctx_rows), v_ctx.index_select(0, ctx_rows)
    keys = torch.cat([k_ctx, k_new], dim=2).float()
    values = torch.cat([v_ctx, v_new], dim=2).float()
    idx_ctx = torch.arange(k_ctx.shape[2], device=q.device)
    idx_new = torch.arange(k_new.shape[2], device=q.device)
    valid = torch.cat(
        [idx_ctx[None, :] < ctx_len[:, None], idx_new[None, :] < new_len[:, None]], dim=1
    )  # [B, T + C]
    # SDPA with a key mask: the same maths as softmax(q k^T * scale) v, without materialising repeated GQA heads.
    out = torch.nn.functional.scaled_dot_product_attention(
        q.float(), keys, values, attn_mask=valid[:, None, None, :], scale=scale,
        enable_gqa=k_ctx.shape[1] != q.shape[1],
    )
    return out.to(q.dtype)


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
