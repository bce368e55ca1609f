"""The byte-level BPE tokenizer: special tokens in fixed places, exact round trips of any text."""

from __future__ import annotations

from pathlib import Path

import pytest

from mercury_lsp.engine.training.tokenizer import (
    SPECIAL_TOKENS,
    sample_texts,
    special_token_ids,
    train_tokenizer,
)
from mercury_lsp.engine.vocab import Vocabulary

from corpus_sample import MODULES


def test_special_tokens_and_round_trip(vocab: Vocabulary) -> None:
    table = vocab.tokenizer.get_vocab(with_added_tokens=True)
    assert [table[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (vocab.eos_id, vocab.mask_id, vocab.pad_id) == (0, 1, 2)
    assert vocab.expand_id == 3 and vocab.delete_id == 4  # present in the tokenizer, unused in filler mode
    for text in [*MODULES.values(), "x = 'naïve ☃'\n\tif y:\n", "   \n\n"]:
        assert vocab.decode(vocab.encode(text)) == text
    assert 300 < vocab.size <= 512


def test_config_ids_and_bad_size(tokenizer_folder: Path) -> None:
    from tokenizers import Tokenizer

    ids = special_token_ids(Tokenizer.from_file(str(tokenizer_folder / "tokenizer.json")))
    assert ids == {"eos_token_id": 0, "mask_token_id": 1, "pad_token_id": 2}
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x = 1\n"], vocab_size=100)


def test_sample_texts_stops_at_the_budget() -> None:
    texts = ["a" * 100] * 50
    assert sum(len(t) for t in sample_texts(texts, max_chars=1000)) == 1000
