"""Golden cases for each post-processing filter and for the whole pipeline (tests/lsp/golden)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mercury_lsp import postprocess
from mercury_lsp.postprocess import CursorView, detect_indent_unit

GOLDEN = Path(__file__).parent / "golden"
CURSOR = "█"


def read_case(path: Path) -> dict[str, str]:
    """Sections of a .case file: `=== name` header lines, text up to the next header."""
    text = path.read_text(encoding="utf-8")
    text = text[:-1] if text.endswith("\n") else text
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("=== "):
            current = sections.setdefault(line[4:].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


CASES = sorted(GOLDEN.glob("*/*.case"))


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden_case(path: Path) -> None:
    case = read_case(path)
    before, cursor, after = case["buffer"].partition(CURSOR)
    assert cursor, f"{path.name} has no cursor marker"
    view = CursorView.around(before, after)
    if path.parent.name == "pipeline":
        result = postprocess.postprocess(case["completion"], view)
    else:
        result = getattr(postprocess, path.parent.name)(case["completion"], view)
    assert result == case["expected"]


def test_every_filter_has_golden_cases() -> None:
    folders = {path.parent.name for path in CASES}
    assert {step.__name__ for step in postprocess.PIPELINE} <= folders


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("def f():\n    return 1\n", "    "),
        ("if x {\n\ty()\n}\n", "\t"),
        ("a:\n  b:\n    c: 1\n  d: 2\n", "  "),
        ("no indentation at all\n", "    "),
    ],
)
def test_detect_indent_unit(text: str, unit: str) -> None:
    assert detect_indent_unit(text) == unit
