"""A byte-level BPE tokenizer for code, trained with `tokenizers`, carrying the diffusion sampler's special tokens."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

# Order fixes the ids: <|endoftext|> 0, <|mask|> 1, <|pad|> 2, <|expand|> 3, <|delete|> 4.
SPECIAL_TOKENS = ("<|endoftext|>", "<|mask|>", "<|pad|>", "<|expand|>", "<|delete|>")


def sample_texts(texts: list[str], max_chars: int, seed: int = 0) -> Iterator[str]:
    """Whole texts in a seeded random order until `max_chars` is reached (BPE needs a sample, not everything)."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    used = 0
    for i in order:
        if used >= max_chars:
            return
        used += len(texts[i])
        yield texts[i]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192) -> Tokenizer:
    """Byte-level BPE with GPT-2 style pre-splitting (runs of spaces stay together, so indentation is cheap)."""
    if not 512 <= vocab_size <= 65536:
        raise ValueError(f"vocab_size must be from 512 to 65536, not {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def special_token_ids(tokenizer: Tokenizer) -> dict[str, int]:
    """config.json keys for the special tokens the engine reads (expand/delete are left to the caller)."""
    table = tokenizer.get_vocab(with_added_tokens=True)
    return {
        "eos_token_id": table["<|endoftext|>"],
        "mask_token_id": table["<|mask|>"],
        "pad_token_id": table["<|pad|>"],
    }
