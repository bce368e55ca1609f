"""Keys/values of each active canvas's context, in fixed slots of one preallocated cache, and an LRU of prefix
chunks that later requests reuse exactly.

A request's context lives in one slot for its whole life: joining or leaving a batch copies nothing, and a
CUDA graph captured over the slot tensors stays valid. The prefix is encoded in fixed chunks straight into the
slot; chunk i attends to itself and to chunks before it, never to what follows, so its keys/values depend only
on the tokens up to its end: typing one more character reuses every full chunk bit for bit instead of re-running
the prefix.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from mercury_lsp.engine.model import LayerKV, ModelConfig, Transformer


class ContextSlots:
    """Per layer, keys and values [slots + 1, Hkv, capacity, D]; the last slot is scratch for padding rows.

    Beside them, per slot, what a canvas window needs to attend over its context: the valid context length, the
    canvas's first position, and the lead token (the last prefix token, recomputed with the canvas for models
    that read token i from output i - 1)."""

    def __init__(self, config: ModelConfig, slots: int, capacity: int, dtype: torch.dtype, device: torch.device):
        shape = (slots + 1, config.num_kv_heads, capacity, config.head_dim)
        # Zeros, not empty: keys past a row's length are masked, but a NaN in them would still poison the
        # reference attention's weighted sum (0 * NaN).
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.num_layers)]
        self.capacity = capacity
        self.scratch = slots
        self.length = torch.zeros(slots + 1, dtype=torch.long, device=device)
        self.canvas_start = torch.zeros(slots + 1, dtype=torch.long, device=device)
        self.lead = torch.zeros(slots + 1, dtype=torch.long, device=device)
        self.has_lead = torch.zeros(slots + 1, dtype=torch.bool, device=device)
        # A padding row has its lead as its only key, so its attention stays finite.
        self.has_lead[self.scratch] = True
        self.canvas_start[self.scratch] = 1

    def layers(self, start: int = 0, stop: int | None = None, span: int | None = None) -> list[LayerKV]:
        """Per-layer views of slots [start, stop) (all by default), keys up to `span`."""
        return [(k[start:stop, :, :span], v[start:stop, :, :span]) for k, v in zip(self.k, self.v)]

    def write(self, slot: int, at: int, kv: list[LayerKV], first: int = 0, last: int | None = None) -> None:
        """Copy window keys/values kv[:, :, first:last] of batch row 0 into the slot from position `at`."""
        for (k, v), (new_k, new_v) in zip(zip(self.k, self.v), kv):
            part_k, part_v = new_k[0, :, first:last], new_v[0, :, first:last]
            k[slot, :, at : at + part_k.shape[1]] = part_k
            v[slot, :, at : at + part_v.shape[1]] = part_v

    def copy_slot(self, source: int, target: int, length: int) -> None:
        for k, v in zip(self.k, self.v):
            k[target, :, :length] = k[source, :, :length]
            v[target, :, :length] = v[source, :, :length]
        for table in (self.length, self.canvas_start, self.lead, self.has_lead):
            table[target] = table[source]

    def set_window(self, slot: int, context_length: int, canvas_start: int, lead: int | None) -> None:
        self.length[slot] = context_length
        self.canvas_start[slot] = canvas_start
        self.lead[slot] = 0 if lead is None else lead
        self.has_lead[slot] = lead is not None


class PrefixCache:
    """An LRU of chunk-aligned prefix keys/values, keyed by their tokens; encodes into a context slot."""

    def __init__(self, model: Transformer, slots: ContextSlots, chunk_size: int = 64, max_entries: int = 8):
        self.model = model
        self.slots = slots
        self.chunk_size = chunk_size
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[int, ...], list[LayerKV]] = OrderedDict()
        self.tokens_reused = 0
        self.tokens_computed = 0

    def full_chunk_length(self, prefix_length: int) -> int:
        """How many leading prefix tokens are encoded in chunks (the tail keeps at least one token)."""
        return max(prefix_length - 1, 0) // self.chunk_size * self.chunk_size

    def encode_into(self, ids: list[int], slot: int) -> None:
        """Keys/values for `ids` (a multiple of the chunk size) in positions [0, len(ids)) of a slot, reusing the
        longest cached match."""
        key = tuple(ids)
        reuse, reused_kv = 0, None
        for cached, kv in self.entries.items():
            common = _common_prefix(cached, key) // self.chunk_size * self.chunk_size
            if common > reuse:
                reuse, reused_kv = common, kv
        for k, v, (cached_k, cached_v) in zip(self.slots.k, self.slots.v, reused_kv or []):
            k[slot, :, :reuse] = cached_k[:, :reuse]
            v[slot, :, :reuse] = cached_v[:, :reuse]
        if reuse < len(ids):
            # Every new chunk in one forward, each attending to the chunks before it and itself: the same keys
            # and values as encoding them one by one, at one launch sequence's cost.
            device = self.slots.length.device
            chunks = torch.tensor([ids[reuse:]], device=device)
            positions = torch.arange(reuse, len(ids), device=device)[None]
            past = self.slots.layers(slot, slot + 1, reuse) if reuse else None
            _, kv = self.model.forward_window(chunks, positions, past=past, block=self.chunk_size)
            self.slots.write(slot, reuse, kv)
        self.tokens_reused += reuse
        self.tokens_computed += len(ids) - reuse
        if not ids:
            return
        if reuse < len(ids) or key not in self.entries:
            self.entries[key] = [(k[slot, :, : len(ids)].clone(), v[slot, :, : len(ids)].clone())
                                 for k, v in zip(self.slots.k, self.slots.v)]
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


class SuffixCache:
    """An LRU of suffix keys/values from first steps, for the next keystroke at the same place.

    Typing changes the prefix, never the suffix: the suffix's keys/values from the previous request's first step
    (computed over an all-mask canvas, the prefix one keystroke shorter) are reused, rotated to their new
    positions, instead of recomputing the suffix (a quarter of the context) on every keystroke. An
    approximation, like the prefix chunks that do not see the suffix; `EngineSettings.reuse_suffix` turns it off.
    """

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[int, ...], tuple[int, list[LayerKV]]] = OrderedDict()
        self.hits = 0

    def get(self, suffix_ids: list[int]) -> tuple[int, list[LayerKV]] | None:
        """(the position the suffix started at, per-layer keys/values [Hkv, n, D]) or None."""
        entry = self.entries.get(tuple(suffix_ids))
        if entry is not None:
            self.entries.move_to_end(tuple(suffix_ids))
            self.hits += 1
        return entry

    def put(self, suffix_ids: list[int], start: int, kv: list[LayerKV]) -> None:
        self.entries[tuple(suffix_ids)] = (start, [(k.clone(), v.clone()) for k, v in kv])
        self.entries.move_to_end(tuple(suffix_ids))
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
