"""Keys/values of the prefix, computed in fixed chunks so later requests reuse them exactly.

Chunk i attends to itself and to chunks before it, never to what follows, so its keys/values depend only on the
tokens up to its end: typing one more character reuses every full chunk bit for bit instead of re-running the
prefix. The tail of the prefix (the last partial chunk), the canvas and the suffix are computed per request.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from mercury_lsp.engine.model import LayerKV, Transformer


def concat_kv(parts: list[list[LayerKV]]) -> list[LayerKV]:
    """Concatenate several per-layer key/value lists along the sequence."""
    parts = [p for p in parts if p and p[0][0].shape[2] > 0]
    if len(parts) <= 1:
        return parts[0] if parts else []
    return [
        (torch.cat([p[i][0] for p in parts], dim=2), torch.cat([p[i][1] for p in parts], dim=2))
        for i in range(len(parts[0]))
    ]


def slice_kv(kv: list[LayerKV], start: int, stop: int) -> list[LayerKV]:
    return [(k[:, :, start:stop], v[:, :, start:stop]) for k, v in kv]


class PrefixCache:
    """An LRU of chunk-aligned prefix keys/values, keyed by their tokens."""

    def __init__(self, model: Transformer, chunk_size: int = 64, max_entries: int = 8):
        self.model = model
        self.chunk_size = chunk_size
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[int, ...], list[LayerKV]] = OrderedDict()
        self.tokens_reused = 0
        self.tokens_computed = 0

    def full_chunk_length(self, prefix_length: int) -> int:
        """How many leading prefix tokens are encoded in chunks (the tail keeps at least one token)."""
        return max(prefix_length - 1, 0) // self.chunk_size * self.chunk_size

    def encode(self, ids: list[int]) -> list[LayerKV]:
        """Keys/values for `ids` (a multiple of the chunk size), reusing the longest cached match."""
        key = tuple(ids)
        reuse, reused_kv = 0, None
        for cached, kv in self.entries.items():
            common = _common_prefix(cached, key) // self.chunk_size * self.chunk_size
            if common > reuse:
                reuse, reused_kv = common, kv
        parts: list[list[LayerKV]] = [slice_kv(reused_kv, 0, reuse)] if reused_kv is not None else []
        device = self.model.embed_tokens.weight.device
        for start in range(reuse, len(ids), self.chunk_size):
            past = concat_kv(parts) if parts else None
            chunk = torch.tensor([ids[start : start + self.chunk_size]], device=device)
            positions = torch.arange(start, start + chunk.shape[1], device=device)[None]
            past_len = torch.tensor([start], device=device)
            _, kv = self.model.forward_window(chunk, positions, past=past, past_len=past_len if past else None)
            parts.append(kv)
        self.tokens_reused += reuse
        self.tokens_computed += len(ids) - reuse
        kv = concat_kv(parts) if parts else []
        if ids:
            self.entries[key] = kv
            self.entries.move_to_end(key)
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        return kv


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
