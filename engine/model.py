"""A decoder-only transformer of the Qwen2 / LLaMA family that runs bidirectionally (diffusion) or causally (AR).

The forward works on a *window* of tokens that may attend to keys/values computed earlier (the cached context),
so the sampler can recompute only the canvas at each denoising step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mercury_lsp.kernels.attention import canvas_attention
from mercury_lsp.kernels.rmsnorm import rms_norm
from mercury_lsp.kernels.rope import apply_rope
from mercury_lsp.kernels.swiglu import swiglu

# Keys and values of one layer: [B, Hkv, T, D] each, positions already rotated into the keys.
LayerKV = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    max_position_embeddings: int = 32768
    tie_embeddings: bool = False
    qkv_bias: bool = True
    # Dream-style checkpoints read token i from output i-1; LLaDA-style predict in place.
    shifted: bool = True
    commit_threshold: float | None = None  # config.json `mercury_threshold`: calibrated for this checkpoint

    def num_parameters(self) -> int:
        d, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attn = d * q + 2 * d * kv + q * d + (q + 2 * kv if self.qkv_bias else 0)
        layer = attn + 3 * d * i + 2 * d
        return self.num_layers * layer + v * d * (1 if self.tie_embeddings else 2) + d


def rope_inv_freq(config: ModelConfig) -> torch.Tensor:
    """Inverse frequencies for RoPE, with the `rope_scaling` variants real checkpoints use."""
    dim = config.head_dim
    # Computed on the CPU whatever the default device: on the meta device (a model built to be loaded) this power
    # would import torch's symbolic-shape stack (sympy, dynamo: ~800 modules, ~75 MB resident) for nothing.
    inv = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device="cpu") / dim))
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind in ("default", None):
        return inv.float()
    if kind == "linear":
        return (inv / float(scaling["factor"])).float()
    if kind == "llama3":
        factor = float(scaling["factor"])
        low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
        old_ctx = float(scaling.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        smooth = ((old_ctx / wavelen) - low) / (high - low)
        scaled = torch.where(wavelen > old_ctx / low, inv / factor, inv)
        mid = (1 - smooth) * inv / factor + smooth * inv
        is_mid = (wavelen <= old_ctx / low) & (wavelen >= old_ctx / high)
        return torch.where(is_mid, mid, scaled).float()
    if kind == "yarn":
        factor = float(scaling["factor"])
        old_ctx = float(scaling.get("original_max_position_embeddings", config.max_position_embeddings))
        beta_fast, beta_slow = float(scaling.get("beta_fast", 32)), float(scaling.get("beta_slow", 1))

        def correction_dim(rotations: float) -> float:
            return (dim * math.log(old_ctx / (rotations * 2 * math.pi))) / (2 * math.log(config.rope_theta))

        low = max(math.floor(correction_dim(beta_fast)), 0)
        high = min(math.ceil(correction_dim(beta_slow)), dim - 1)
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / max(high - low, 1e-3)).clamp(0, 1)
        extrapolation = 1 - ramp
        return (inv / factor * (1 - extrapolation) + inv * extrapolation).float()
    raise ValueError(f"unsupported rope_scaling type {kind!r}")


def rope_attention_factor(config: ModelConfig) -> float:
    """YaRN scales cos/sin by an attention factor; other variants do not."""
    scaling = config.rope_scaling or {}
    if scaling.get("rope_type", scaling.get("type")) != "yarn":
        return 1.0
    if "attention_factor" in scaling:
        return float(scaling["attention_factor"])
    return 0.1 * math.log(float(scaling["factor"])) + 1.0


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return rms_norm(x, self.weight, self.eps, residual)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = config.num_heads, config.num_kv_heads, config.head_dim
        d, q, kv = config.hidden_size, config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        # q, k and v in one projection (one GEMM per layer); checkpoints keep them apart (checkpoint.py splits).
        self.qkv_proj = nn.Linear(d, q + 2 * kv, bias=config.qkv_bias)
        self.o_proj = nn.Linear(q, d, bias=False)
        self.scale = 1.0 / math.sqrt(config.head_dim)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        past: LayerKV | None,
        past_len: torch.Tensor | None,
        window_len: torch.Tensor | None,
        block: int,
        past_rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, LayerKV]:
        b, length, _ = x.shape
        n_q, n_kv = self.num_heads, self.num_kv_heads
        qkv = self.qkv_proj(x).view(b, length, n_q + 2 * n_kv, self.head_dim)
        # Slices, not split(): RoPE rotates q and k in place, which autograd allows on single views only.
        q, k, v = qkv[:, :, :n_q], qkv[:, :, n_q : n_q + n_kv], qkv[:, :, n_q + n_kv :]
        apply_rope(q, k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()
        if block:
            out = self._blockwise(q, k, v, past, block)
        elif past is None and window_len is None:
            # Whole-sequence bidirectional pass (training, parity): SDPA picks flash attention on GPU.
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale, enable_gqa=True)
        else:
            if past is None:
                past = (k[:, :, :0], v[:, :, :0])
                past_len = torch.zeros(b, dtype=torch.long, device=x.device)
            if window_len is None:
                window_len = torch.full((b,), length, dtype=torch.long, device=x.device)
            out = canvas_attention(q, past[0], past[1], past_len, k, v, window_len, self.scale, past_rows)
        out = out.transpose(1, 2).reshape(b, length, n_q * self.head_dim)
        return self.o_proj(out), (k, v)

    def _blockwise(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: LayerKV | None,
                   block: int) -> torch.Tensor:
        """Window tokens attend to every past key and to the window keys of their own block and earlier blocks
        (block 1 is causal attention)."""
        length = q.shape[2]
        if past is None and block == 1:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale, enable_gqa=True)
        offset = 0 if past is None else past[0].shape[2]
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        blocks = torch.arange(length, device=q.device) // block
        allowed = torch.cat([
            torch.ones(length, offset, dtype=torch.bool, device=q.device), blocks[None, :] <= blocks[:, None],
        ], dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.scale, enable_gqa=True)


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        # gate and up in one projection; checkpoints keep them apart (checkpoint.py splits).
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.intermediate_size, dim=-1)
        return self.down_proj(swiglu(gate, up))


class TransformerBlock(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = FeedForward(config)

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        cos: torch.Tensor,
        sin: torch.Tensor,
        past: LayerKV | None,
        past_len: torch.Tensor | None,
        window_len: torch.Tensor | None,
        block: int,
        past_rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, LayerKV]:
        h, residual = self.input_layernorm(x, residual)
        attn, kv = self.self_attn(h, cos, sin, past, past_len, window_len, block, past_rows)
        h, residual = self.post_attention_layernorm(attn, residual)
        return self.mlp(h), residual, kv


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # Built on the meta device to be loaded (checkpoint.py), random init (normal_) would import the same stack.
        on_meta = torch.empty(0).is_meta
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size,
                                         _weight=torch.empty(config.vocab_size, config.hidden_size) if on_meta else None)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.register_buffer("inv_freq", rope_inv_freq(config).to(torch.empty(0).device), persistent=False)
        self.rope_factor = rope_attention_factor(config)

    def rope_tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.to(torch.float32)[..., None] * self.inv_freq.to(positions.device)
        return freqs.cos() * self.rope_factor, freqs.sin() * self.rope_factor

    def forward_window(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        past: list[LayerKV] | None = None,
        past_len: torch.Tensor | None = None,
        window_len: torch.Tensor | None = None,
        causal: bool = False,
        past_rows: torch.Tensor | None = None,
        block: int = 0,
    ) -> tuple[torch.Tensor, list[LayerKV]]:
        """Run a window of tokens [B, L] over optional cached keys/values; return final hidden states and the
        window's own keys/values per layer.

        Bidirectional by default: every window token sees all valid past keys (past_len[b] of them) and all valid
        window keys (window_len[b]). `past_rows[b]` names the row of `past` that window row b reads (a slot of a
        shared cache). With `block` > 0 window tokens see every past key (all valid) and the window keys of
        their own block of `block` tokens and earlier blocks: the prefix chunks' pattern; causal=True is block 1,
        the autoregressive model.
        """
        block = 1 if causal else block
        if positions is None:
            positions = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        cos, sin = self.rope_tables(positions)
        x, residual = self.embed_tokens(ids), None
        new_kv: list[LayerKV] = []
        for i, layer in enumerate(self.layers):
            layer_past = None if past is None else past[i]
            x, residual, kv = layer(x, residual, cos, sin, layer_past, past_len, window_len, block, past_rows)
            new_kv.append(kv)
        hidden, _ = self.norm(x, residual)
        return hidden, new_kv

    def rotate_keys(self, keys: torch.Tensor, shift: int) -> torch.Tensor:
        """Keys [..., T, D] rotated as if each sat `shift` positions later: RoPE rotations compose, so cached keys
        move to new positions without recomputation (the YaRN factor is in them already, and stays once)."""
        angles = shift * self.inv_freq.to(keys.device, torch.float32)
        cos, sin = angles.cos(), angles.sin()
        half = keys.shape[-1] // 2
        x1, x2 = keys[..., :half].float(), keys[..., half:].float()
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(keys.dtype)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def forward(self, ids: torch.Tensor, causal: bool = False) -> torch.Tensor:
        """Logits for a whole sequence [B, L] (training and parity tests)."""
        hidden, _ = self.forward_window(ids, causal=causal)
        return self.logits(hidden)
