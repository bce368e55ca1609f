"""A small corpus of Python files in a temp folder, and the engine's vocabulary trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mercury_lsp.engine.checkpoint import load_vocabulary
from mercury_lsp.engine.training.tokenizer import special_token_ids, train_tokenizer
from mercury_lsp.engine.vocab import Vocabulary

from corpus_sample import MODULES, write_modules


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_modules(tmp_path_factory.mktemp("corpus"), MODULES)


@pytest.fixture(scope="session")
def tokenizer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a 400-token tokenizer.json trained on the corpus texts."""
    folder = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(list(MODULES.values()) * 4, vocab_size=512).save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="session")
def vocab(tokenizer_folder: Path) -> Vocabulary:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_folder / "tokenizer.json"))
    return load_vocabulary(tokenizer_folder, special_token_ids(tokenizer))
