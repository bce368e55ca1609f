"""Token healing: the cursor can split a token, so the partial token at the end of the prefix moves into the canvas.

The canvas then has to start with the bytes already typed; the text returned to the editor drops them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mercury_lsp.engine.vocab import Vocabulary

MAX_HEALED_TOKENS = 3


@dataclass
class HealedPrefix:
    ids: list[int]  # prefix tokens that stay in the context
    heal: bytes  # bytes the canvas must start with (already typed by the user)
    first_allowed: torch.Tensor | None  # token ids allowed at canvas position 0, None when nothing was healed


def heal_prefix(vocab: Vocabulary, prefix_ids: list[int]) -> HealedPrefix:
    """Move the last prefix token (more when it ends inside a UTF-8 character) into the canvas constraint."""
    if not prefix_ids or prefix_ids[-1] in vocab.special_ids:
        return HealedPrefix(list(prefix_ids), b"", None)
    for count in range(1, min(MAX_HEALED_TOKENS, len(prefix_ids)) + 1):
        kept = prefix_ids[:-count]
        if any(i in vocab.special_ids for i in prefix_ids[-count:]):
            break
        try:
            vocab.token_bytes_of(kept).decode("utf-8")
        except UnicodeDecodeError:
            continue  # the cut falls inside a character: heal one more token
        heal = vocab.token_bytes_of(prefix_ids[-count:])
        allowed = vocab.ids_starting_with(heal)
        if allowed.numel() == 0:
            break
        return HealedPrefix(kept, heal, allowed)
    return HealedPrefix(list(prefix_ids), b"", None)
