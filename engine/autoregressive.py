"""Autoregressive decoding of the same weights: the baseline every speed claim is measured against.

Treated like the diffusion step, so the comparison is like for like: a preallocated key/value cache, a one-token
step at static shapes that reads its position from the device, and on CUDA that step captured as a graph once
and replayed per token. One host read per generation, at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from mercury_lsp.engine.model import Transformer


@dataclass
class AutoregressiveResult:
    ids: list[int]
    prefill_ms: float
    decode_ms: float


class AutoregressiveDecoder:
    """Greedy decoding with a cache of `capacity` positions."""

    def __init__(self, model: Transformer, capacity: int, graphs: bool = True) -> None:
        config = model.config
        device, dtype = model.embed_tokens.weight.device, model.embed_tokens.weight.dtype
        shape = (1, config.num_kv_heads, capacity, config.head_dim)
        self.model = model
        self.capacity = capacity
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.token = torch.zeros(1, 1, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.produced = torch.zeros(1, dtype=torch.long, device=device)  # tokens written to `out`
        self.out = torch.zeros(capacity, dtype=torch.long, device=device)
        self.one = torch.ones(1, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        if graphs and device.type == "cuda":
            self._capture()

    def _decode(self) -> None:
        """Feed `token` at `position`, write its keys/values to the cache, put the next token in `token`."""
        past = list(zip(self.k, self.v))
        # One window token over all earlier keys is causal attention; the window's own key is the newest.
        hidden, kv = self.model.forward_window(
            self.token, self.position[:, None], past=past, past_len=self.position, window_len=self.one,
        )
        for (k, v), (new_k, new_v) in zip(past, kv):
            k.index_copy_(2, self.position, new_k)
            v.index_copy_(2, self.position, new_v)
        self.token.copy_(self.model.logits(hidden[:, -1]).argmax(-1, keepdim=True))
        self.out.index_copy_(0, self.produced, self.token[0])
        self.position += 1
        self.produced += 1

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up on scratch state: Triton compiles, the allocator settles
            for _ in range(2):
                self._decode()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._decode()

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int,
                 stop_ids: frozenset[int] = frozenset()) -> AutoregressiveResult:
        """Greedy continuation of `prompt_ids` (max_new_tokens, cut at the first stop token)."""
        if len(prompt_ids) + max_new_tokens > self.capacity:
            raise ValueError(f"{len(prompt_ids)} + {max_new_tokens} tokens exceed the cache's {self.capacity}.")
        device = self.token.device
        started = time.perf_counter()
        hidden, kv = self.model.forward_window(torch.tensor([prompt_ids], device=device), causal=True)
        for k, v, (new_k, new_v) in zip(self.k, self.v, kv):
            k[:, :, : len(prompt_ids)] = new_k
            v[:, :, : len(prompt_ids)] = new_v
        self.token.copy_(self.model.logits(hidden[:, -1]).argmax(-1, keepdim=True))
        self.out[0] = self.token[0, 0]
        self.position.fill_(len(prompt_ids))
        self.produced.fill_(1)
        _synchronize(device)
        prefill_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        for _ in range(max_new_tokens - 1):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._decode()
        ids = self.out[:max_new_tokens].tolist()
        decode_ms = (time.perf_counter() - started) * 1000
        for i, token in enumerate(ids):
            if token in stop_ids:
                ids = ids[:i]
                break
        return AutoregressiveResult(ids, prefill_ms, decode_ms)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generate_autoregressive(model: Transformer, prompt_ids: list[int], max_new_tokens: int,
                            stop_ids: frozenset[int] = frozenset()) -> AutoregressiveResult:
    """Greedy continuation of `prompt_ids` with a decoder built for this one call (tests, one-off use)."""
    decoder = AutoregressiveDecoder(model, len(prompt_ids) + max_new_tokens, graphs=False)
    return decoder.generate(prompt_ids, max_new_tokens, stop_ids)
