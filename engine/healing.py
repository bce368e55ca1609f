"""Token healing: the cursor can split a token, so the partial token at the end of the prefix moves into the canvas.

The canvas then has to start with the bytes already typed; the text returned to the editor drops them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from mercury_lsp.engine.vocab import Vocabulary

MAX_HEALED_TOKENS = 3


@dataclass
class HealedPrefix:
    ids: list[int]  # prefix tokens that stay in the context
    heal: bytes  # bytes the canvas must start with (already typed by the user)
    first_allowed: torch.Tensor | None  # token ids allowed at canvas position 0, None when nothing was healed


# What the user most often types next: a letter (the probe only has to be a non-space character).
PROBE = "x"


def encode_prefix(vocab: Vocabulary, text: str) -> tuple[list[int], bytes]:
    """The prefix's tokens as they tokenize once more is typed, and the trailing bytes that do not yet form one.

    Byte-level pre-tokenizers split a whitespace run before its last character when text follows it
    (`\n    return` is `\n   ` + ` return`), but a prefix that *ends* in the run encodes it as one token (`\n    `)
    that no natural continuation starts with: a cursor after indentation, the most common place to complete,
    would force the model to produce an unnatural split (it then doubled the indentation). When the last token
    is such a run, the prefix is tokenized with a probe character after it and the run's tail that joins the
    probe's token is held back, to become the healed bytes."""
    ids = vocab.encode(text) if text else []
    if not ids or ids[-1] in vocab.special_ids:
        return ids, b""
    last = vocab.token_bytes[ids[-1]]
    if len(last) < 2 or last.strip():
        return ids, b""
    encoded = text.encode("utf-8")
    kept, consumed = [], 0
    for token in vocab.encode(text + PROBE):
        size = len(vocab.token_bytes[token])
        if consumed + size > len(encoded):
            break
        kept.append(token)
        consumed += size
    held = encoded[consumed:]
    if not kept or vocab.token_bytes_of(kept) != encoded[:consumed]:
        return ids, b""  # the probe changed earlier tokens: the plain encoding
    if held and not vocab.ids_starting_with(held).numel():
        return ids, b""
    # With nothing held (`\n\n` + `x` is `\n`, `\n`, `x`), heal_prefix heals the probe-split run's last token.
    return kept, held


def encode_suffix(vocab: Vocabulary, suffix: str, prefix: str = "") -> tuple[list[int], bytes]:
    """The suffix's tokens as they tokenize after the word the cursor is in, and its leading bytes that belong to
    that word's token.

    A cursor inside a word (`pri|nt(x)`) leaves the suffix starting mid-word: tokenized on its own, `nt` is a
    token the model never saw there. The suffix is tokenized after the prefix's partial word; the bytes that
    join that word's token (`nt` of `print`) are held back: the canvas writes them as the end of its word, and
    they are dropped from the returned text (they are in the buffer already)."""
    ids = vocab.encode(suffix) if suffix else []
    word = _WORD_END.search(prefix[-64:])
    if not ids or word is None or not _WORD_START.match(suffix):
        return ids, b""
    probe = word.group().encode("utf-8")
    encoded = suffix.encode("utf-8")
    consumed = 0
    tokens = vocab.encode(word.group() + suffix)
    for i, token in enumerate(tokens):
        consumed += len(vocab.token_bytes[token])
        if consumed >= len(probe):
            held, rest = encoded[: consumed - len(probe)], tokens[i + 1 :]
            if vocab.token_bytes_of(rest) != encoded[len(held) :]:
                break  # the word changed later tokens: the plain encoding
            return rest, held
    return ids, b""


_WORD_END = re.compile(r"\w+$")
_WORD_START = re.compile(r"\w")


def heal_prefix(vocab: Vocabulary, prefix_ids: list[int], held: bytes = b"") -> HealedPrefix:
    """The canvas constraint for a prefix: the bytes `encode_prefix` held back when there are any, else the last
    prefix token (more when it ends inside a UTF-8 character) moves into the canvas."""
    if held:
        return HealedPrefix(list(prefix_ids), held, vocab.ids_starting_with(held))
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
