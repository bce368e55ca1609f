"""Write the tiny random checkpoint the editor tests use: `python tests/editors/tiny_model.py FOLDER`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checkpoints import make_tiny_checkpoint  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/editors/tiny_model.py FOLDER", file=sys.stderr)
        return 2
    print(make_tiny_checkpoint(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
