"""Autoregressive decoding of the same weights (causal attention, KV cache): the baseline every speed claim
is measured against."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from mercury_lsp.engine.model import LayerKV, Transformer


@dataclass
class AutoregressiveResult:
    ids: list[int]
    prefill_ms: float
    decode_ms: float


@torch.inference_mode()
def generate_autoregressive(
    model: Transformer, prompt_ids: list[int], max_new_tokens: int, stop_ids: frozenset[int] = frozenset()
) -> AutoregressiveResult:
    """Greedy continuation of `prompt_ids`, one token per forward, reusing the keys/values of earlier tokens."""
    device = model.embed_tokens.weight.device
    started = time.perf_counter()
    ids = torch.tensor([prompt_ids], device=device)
    hidden, past = model.forward_window(ids, causal=True)
    token = int(model.logits(hidden[:, -1]).argmax(-1))
    prefill_ms = (time.perf_counter() - started) * 1000
    out: list[int] = []
    position = len(prompt_ids)
    started = time.perf_counter()
    while len(out) < max_new_tokens and token not in stop_ids:
        out.append(token)
        if len(out) == max_new_tokens:
            break
        step = torch.tensor([[token]], device=device)
        hidden, kv = model.forward_window(step, torch.tensor([[position]], device=device), past=past, causal=True)
        past = _append(past, kv)
        token = int(model.logits(hidden[:, -1]).argmax(-1))
        position += 1
    return AutoregressiveResult(out, prefill_ms, (time.perf_counter() - started) * 1000)


def _append(past: list[LayerKV], new: list[LayerKV]) -> list[LayerKV]:
    return [(torch.cat([k, nk], dim=2), torch.cat([v, nv], dim=2)) for (k, v), (nk, nv) in zip(past, new)]
