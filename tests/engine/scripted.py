"""A stand-in model whose 'knowledge' is a fixed table: at each absolute position it predicts given tokens with
given probabilities. It exercises the real sampler and infill engine with outcomes known in advance."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch


class ScriptedModel(torch.nn.Module):
    def __init__(
        self,
        vocab_size: int,
        script: dict[int, list[tuple[int, float]]],
        default: list[tuple[int, float]],
        shifted: bool = False,
        max_positions: int = 2048,
    ):
        super().__init__()
        self.config = SimpleNamespace(
            shifted=shifted, num_layers=1, num_kv_heads=1, head_dim=2, vocab_size=vocab_size, commit_threshold=None,
            max_position_embeddings=max_positions,
        )
        self.embed_tokens = torch.nn.Embedding(1, 1)
        table = torch.empty(max_positions, vocab_size)
        for position in range(max_positions):
            # The output at position q predicts token q (in place) or token q + 1 (shifted).
            target = position + 1 if shifted else position
            table[position] = self._row(vocab_size, script.get(target, default))
        self.register_buffer("table", table)
        self.window_calls: list[int] = []

    @staticmethod
    def _row(vocab_size: int, ranked: list[tuple[int, float]]) -> torch.Tensor:
        rest = max(1e-6, 1.0 - sum(p for _, p in ranked)) / (vocab_size - len(ranked))
        row = torch.full((vocab_size,), math.log(rest))
        for token, p in ranked:
            row[token] = math.log(p)
        return row

    def forward_window(self, ids, positions=None, past=None, past_len=None, window_len=None, causal=False,
                       past_rows=None):
        if positions is None:
            positions = torch.arange(ids.shape[1]).expand(ids.shape[0], -1)
        self.window_calls.append(int(ids.shape[1]))
        kv = torch.zeros(ids.shape[0], 1, ids.shape[1], 2)
        return positions[..., None].float(), [(kv, kv.clone())]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.table[hidden[..., 0].long()]
