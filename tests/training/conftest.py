"""A small corpus of Python files in a temp folder, and the engine's vocabulary trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mercury_lsp.engine.checkpoint import load_vocabulary
from mercury_lsp.engine.tokenizer_training import special_token_ids, train_tokenizer
from mercury_lsp.engine.vocab import Vocabulary

from checkpoints import SAMPLE_CODE

MODULES = {
    "geometry/points.py": SAMPLE_CODE,
    "geometry/__init__.py": "from .points import Point\n\n__all__ = ['Point']\n",
    "text/words.py": (
        "def count_words(text):\n    counts = {}\n    for word in text.split():\n"
        "        counts[word] = counts.get(word, 0) + 1\n    return counts\n\n\n"
        "def longest(words):\n    best = ''\n    for word in words:\n        if len(word) > len(best):\n"
        "            best = word\n    return best\n"
    ),
    "text/lines.py": (
        "import os\nimport sys\n\n\ndef read_lines(path):\n    with open(path) as f:\n"
        "        return [line.rstrip() for line in f]\n\n\nif __name__ == '__main__':\n"
        "    print(read_lines(sys.argv[1]), os.getcwd())\n"
    ),
}


def write_modules(root: Path, modules: dict[str, str]) -> Path:
    for name, text in modules.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


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
