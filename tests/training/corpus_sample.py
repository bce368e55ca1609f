"""A small corpus of Python modules for the training tests (a module of its own: `conftest` is not unique)."""

from __future__ import annotations

from pathlib import Path

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
