"""The tokenizer with the special tokens a diffusion sampler needs, and byte-level views of every token."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property

import torch
from tokenizers import Tokenizer


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte-to-unicode table used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


_BYTE_DECODER = _byte_decoder()


@dataclass
class Vocabulary:
    tokenizer: Tokenizer
    mask_id: int
    eos_id: int
    pad_id: int
    expand_id: int | None = None
    delete_id: int | None = None
    special_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def filler_ids(self) -> list[int]:
        """Tokens that mean 'nothing here' on a fixed-length canvas."""
        return sorted({self.eos_id, self.pad_id})

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.token_bytes_of(ids).decode("utf-8", errors="replace")

    def token_bytes_of(self, ids: list[int]) -> bytes:
        table = self.token_bytes
        return b"".join(table[i] if i < len(table) else b"" for i in ids)

    @cached_property
    def token_bytes(self) -> list[bytes]:
        """The exact bytes each token stands for (special tokens stand for nothing)."""
        out: list[bytes] = []
        for i in range(self.size):
            piece = self.tokenizer.id_to_token(i)
            if piece is None or i in self.special_ids:
                out.append(b"")
            elif all(ch in _BYTE_DECODER for ch in piece):
                out.append(bytes(_BYTE_DECODER[ch] for ch in piece))
            else:
                out.append(self.tokenizer.decode([i], skip_special_tokens=False).encode("utf-8"))
        return out

    @cached_property
    def _sorted_bytes(self) -> tuple[list[bytes], torch.Tensor]:
        order = sorted((b, i) for i, b in enumerate(self.token_bytes) if b)
        return [b for b, _ in order], torch.tensor([i for _, i in order], dtype=torch.long)

    def ids_starting_with(self, prefix: bytes) -> torch.Tensor:
        """All token ids whose bytes begin with `prefix` (a contiguous range of the sorted vocabulary)."""
        keys, ids = self._sorted_bytes
        lo = bisect.bisect_left(keys, prefix)
        stem = prefix.rstrip(b"\xff")
        if not stem:
            return ids[lo:]
        successor = stem[:-1] + bytes([stem[-1] + 1])  # the first byte string after every one starting with prefix
        return ids[lo : bisect.bisect_left(keys, successor)]
