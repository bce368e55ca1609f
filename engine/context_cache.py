"""Keys/values of each active canvas's context, in fixed slots of one preallocated cache, and LRUs (bounded in
bytes) of prefix chunks that later requests reuse exactly and of suffixes the next keystroke reuses.

A request's context lives in one slot for its whole life: joining or leaving a batch copies nothing, and a
CUDA graph captured over the slot tensors stays valid. The prefix is encoded in fixed chunks straight into the
slot; chunk i attends to itself and to chunks before it, never to what follows, so its keys/values depend only
on the tokens up to its end: typing one more character reuses every full chunk bit for bit instead of re-running
the prefix.
"""

from __future__ import annotations

import mmap
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
        tensors = [_zeros(shape, dtype, device) for _ in range(2 * config.num_layers)]
        self.k = [t for t, _ in tensors[: config.num_layers]]
        self.v = [t for t, _ in tensors[config.num_layers :]]
        self._regions = [region for _, region in tensors]  # in the order of self.k + self.v
        self.capacity = capacity
        self.scratch = slots
        self.length = torch.zeros(slots + 1, dtype=torch.long, device=device)
        self.canvas_start = torch.zeros(slots + 1, dtype=torch.long, device=device)
        self.lead = torch.zeros(slots + 1, dtype=torch.long, device=device)
        self.has_lead = torch.zeros(slots + 1, dtype=torch.bool, device=device)
        # A padding row has its lead as its only key, so its attention stays finite.
        self.has_lead[self.scratch] = True
        self.canvas_start[self.scratch] = 1
        # Per slot, the prefix tokens whose chunk keys/values it still holds in positions [0, n): the next request
        # landing there (the next keystroke, on a CPU serving one editor) reuses them without the chunk cache.
        self.resident: list[list[int]] = [[] for _ in range(slots + 1)]

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
        self.resident[target] = self.resident[source][:length]

    def set_window(self, slot: int, context_length: int, canvas_start: int, lead: int | None) -> None:
        self.length[slot] = context_length
        self.canvas_start[slot] = canvas_start
        self.lead[slot] = 0 if lead is None else lead
        self.has_lead[slot] = lead is not None

    @property
    def slot_bytes(self) -> int:
        """Bytes of keys/values one slot holds at full capacity, over all layers."""
        return sum(t[0].numel() * t.element_size() for t in self.k + self.v)

    def drop_slot(self, slot: int) -> bool:
        """Give a free slot's pages back to the system (they read as zeros again and cost nothing until written);
        True where the slot lives in such pages (CPU), False on a device."""
        return self.trim_slot(slot, 0)

    def trim_slot(self, slot: int, keep: int) -> bool:
        """Give back a slot's pages past its first `keep` positions, in every layer and head (pages that hold any
        kept byte stay); False on a device. A slot's contents die with its request: without this a slot stays
        resident at the longest context it ever held, and three clients kept three full slots for short requests.
        """
        if self._regions[0] is None:
            return False
        del self.resident[slot][keep:]
        head_dim, itemsize, heads = self.k[0].shape[-1], self.k[0].element_size(), self.k[0].shape[1]
        row = self.capacity * head_dim * itemsize  # bytes of one head's keys (or values) in one slot
        kept = min(keep, self.capacity) * head_dim * itemsize
        page = mmap.PAGESIZE
        for head in range(heads):
            first = slot * heads * row + head * row
            start, stop = -(-(first + kept) // page) * page, (first + row) // page * page
            if start < stop:
                for region in self._regions:
                    region.madvise(mmap.MADV_DONTNEED, start, stop - start)
        return True


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, mmap.mmap | None]:
    """A zeroed tensor; on a CPU in an anonymous mapping of its own (returned beside it), whose pages the system
    hands out zeroed on first touch: slots no request has used cost no memory, and freed ones can be handed back."""
    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device), None
    size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return torch.frombuffer(region, dtype=torch.uint8).view(dtype).view(shape), region  # the tensor keeps it alive


class PrefixCache:
    """An LRU of prefix chunks' keys/values, each keyed by every token up to its end (so a chunk is reused only
    after the very same tokens), bounded in bytes; encodes a prefix into a context slot.

    Chunks, not whole prefixes: two requests in one document share their leading chunks, held once."""

    def __init__(self, model: Transformer, slots: ContextSlots, chunk_size: int = 64, max_bytes: int = 32 * 2**20,
                 group_tokens: int = 256):
        self.model = model
        self.slots = slots
        self.chunk_size = chunk_size
        self.group_tokens = max(group_tokens // chunk_size, 1) * chunk_size
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], list[LayerKV]] = OrderedDict()
        self.bytes = 0
        self.tokens_in_slot = 0  # leading tokens a slot still held from its last request
        self.tokens_reused = 0  # copied from cached chunks
        self.tokens_computed = 0

    def full_chunk_length(self, prefix_length: int) -> int:
        """How many leading prefix tokens are encoded in chunks (the tail keeps at least one token)."""
        return max(prefix_length - 1, 0) // self.chunk_size * self.chunk_size

    def held_run(self, slot: int, ids: list[int]) -> int:
        """How many leading tokens of `ids` (whole chunks) the slot still holds keys/values for."""
        held, size, run = self.slots.resident[slot], self.chunk_size, 0
        while run + size <= min(len(ids), len(held)) and held[run : run + size] == ids[run : run + size]:
            run += size
        return run

    def encode_into(self, ids: list[int], slot: int) -> None:
        """Keys/values for `ids` (a multiple of the chunk size) in positions [0, len(ids)) of a slot: the leading
        chunks the slot still holds stay, the longest cached run after them is copied in, the rest is computed.
        Afterwards the slot holds exactly `ids` (the caller writes its window past them)."""
        size, used = self.chunk_size, []
        reuse = from_slot = self.held_run(slot, ids)
        for end in range(size, reuse + 1, size):
            if (key := tuple(ids[:end])) in self.entries:
                used.append(key)  # still in use: its cached copy stays recent too
        self.tokens_in_slot += reuse
        while reuse < len(ids) and (key := tuple(ids[: reuse + size])) in self.entries:
            for k, v, (cached_k, cached_v) in zip(self.slots.k, self.slots.v, self.entries[key]):
                k[slot, :, reuse : reuse + size] = cached_k
                v[slot, :, reuse : reuse + size] = cached_v
            used.append(key)
            reuse += size
        # New chunks a group at a time, each chunk attending to the chunks before it and itself: the same keys and
        # values as encoding them one by one, at one launch sequence per group. Groups bound what a long prefix's
        # forward holds at once (its attention and MLP activations), which the C heap keeps until a trim.
        device = self.slots.length.device
        for start in range(reuse, len(ids), self.group_tokens):
            stop = min(start + self.group_tokens, len(ids))
            chunks = torch.tensor([ids[start:stop]], device=device)
            positions = torch.arange(start, stop, device=device)[None]
            past = self.slots.layers(slot, slot + 1, start) if start else None
            _, kv = self.model.forward_window(chunks, positions, past=past, block=size)
            self.slots.write(slot, start, kv)
        if reuse < len(ids):
            for at in range(reuse, len(ids), size):
                key = tuple(ids[: at + size])
                if key in self.entries:  # outlived the chunk before it
                    self.bytes -= _kv_bytes(self.entries[key])
                self.entries[key] = _packed([(k[slot, :, at : at + size], v[slot, :, at : at + size])
                                             for k, v in zip(self.slots.k, self.slots.v)])
                self.bytes += _kv_bytes(self.entries[key])
                used.append(key)
        self.slots.resident[slot] = list(ids)
        self.tokens_reused += reuse - from_slot
        self.tokens_computed += len(ids) - reuse
        # The deepest chunk is the least recent of the run: eviction takes it before the chunks it hangs from.
        for key in reversed(used):
            self.entries.move_to_end(key)
        while self.bytes > self.max_bytes and self.entries:
            self.bytes -= _kv_bytes(self.entries.popitem(last=False)[1])


class SuffixCache:
    """An LRU of suffix keys/values from first steps, for the next keystroke at the same place; bounded in bytes.

    Typing changes the prefix, never the suffix: the suffix's keys/values from the previous request's first step
    (computed over an all-mask canvas, the prefix one keystroke shorter) are reused, rotated to their new
    positions, instead of recomputing the suffix (a quarter of the context) on every keystroke. An
    approximation, like the prefix chunks that do not see the suffix; `EngineSettings.reuse_suffix` turns it off.
    """

    def __init__(self, max_bytes: int = 16 * 2**20, dtype: torch.dtype | None = None) -> None:
        self.max_bytes = max_bytes
        self.dtype = dtype  # the context slots' (None: as the window computed them)
        self.entries: OrderedDict[tuple[int, ...], tuple[int, list[LayerKV]]] = OrderedDict()
        self.bytes = 0
        self.hits = 0

    def get(self, suffix_ids: list[int]) -> tuple[int, list[LayerKV]] | None:
        """(the position the suffix started at, per-layer keys/values [Hkv, n, D]) or None."""
        entry = self.entries.get(tuple(suffix_ids))
        if entry is not None:
            self.entries.move_to_end(tuple(suffix_ids))
            self.hits += 1
        return entry

    def put(self, suffix_ids: list[int], start: int, kv: list[LayerKV]) -> None:
        key = tuple(suffix_ids)
        if key in self.entries:
            self.bytes -= _kv_bytes(self.entries[key][1])
        self.entries[key] = (start, _packed(kv, self.dtype))
        self.bytes += _kv_bytes(self.entries[key][1])
        self.entries.move_to_end(key)
        while self.bytes > self.max_bytes and self.entries:
            self.bytes -= _kv_bytes(self.entries.popitem(last=False)[1][1])


def _packed(kv: list[LayerKV], dtype: torch.dtype | None = None) -> list[LayerKV]:
    """A copy of every layer's keys/values (in `dtype`, theirs by default) in one block of its own: on a CPU an
    anonymous mapping, unmapped when the entry is evicted. A cache entry outlives many requests; in the C heap it
    would sit among their short-lived activations and keep the pages around it from going back to the system."""
    first = kv[0][0]
    block, _ = _zeros((2 * len(kv), *first.shape), dtype or first.dtype, first.device)  # the block keeps its mapping
    for i, (k, v) in enumerate(kv):
        block[2 * i].copy_(k)
        block[2 * i + 1].copy_(v)
    return [(block[2 * i], block[2 * i + 1]) for i in range(len(kv))]


def _kv_bytes(kv: list[LayerKV]) -> int:
    return sum(t.numel() * t.element_size() for pair in kv for t in pair)
