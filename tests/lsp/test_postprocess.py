"""Golden cases (tests/lsp/golden) for each post-processing filter, the whole pipeline, the confidence cut and the
comment/string scanner; then the one decision on single-line suggestions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercury_lsp import postprocess
from mercury_lsp.engine.api.infill import Completion, Span
from mercury_lsp.postprocess import (
    CursorView,
    cut_at_confidence,
    detect_indent_unit,
    scope,
    single_line,
    suggestion,
)
from mercury_lsp.syntax_region import SYNTAXES, region_at

GOLDEN = Path(__file__).parent / "golden"
CURSOR = "█"


def read_case(path: Path) -> dict[str, str]:
    """Sections of a .case file: `=== name` header lines, text up to the next header.

    A header `=== name (json)` holds one JSON string, for text with characters a file cannot show.
    """
    text = path.read_text(encoding="utf-8")
    text = text[:-1] if text.endswith("\n") else text
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("=== "):
            current = sections.setdefault(line[4:].strip(), [])
        elif current is not None:
            current.append(line)
    out = {}
    for name, lines in sections.items():
        body = "\n".join(lines)
        if name.endswith(" (json)"):
            name, body = name.removesuffix(" (json)"), json.loads(body)
        out[name] = body
    return out


def read_tokens(body: str) -> tuple[str, list[Span]]:
    """`"text" confidence` lines: the completion text and its spans."""
    decoder = json.JSONDecoder()
    text, spans = "", []
    for line in body.split("\n"):
        piece, end = decoder.raw_decode(line)
        spans.append(Span(len(text), len(text) + len(piece), float(line[end:])))
        text += piece
    return text, spans


def cases(folder: str | None = None) -> list[Path]:
    return sorted(GOLDEN.glob(f"{folder or '*'}/*.case"))


FILTER_CASES = [p for p in cases() if p.parent.name not in ("cut_at_confidence", "syntax_region")]


@pytest.mark.parametrize("path", FILTER_CASES, ids=[f"{p.parent.name}/{p.stem}" for p in FILTER_CASES])
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


@pytest.mark.parametrize("path", cases("cut_at_confidence"), ids=lambda p: p.stem)
def test_confidence_cut_golden_case(path: Path) -> None:
    case = read_case(path)
    text, spans = read_tokens(case["tokens"])
    assert cut_at_confidence(text, spans, float(case["min_confidence"])) == case["expected"]


@pytest.mark.parametrize("path", cases("syntax_region"), ids=lambda p: p.stem)
def test_syntax_region_golden_case(path: Path) -> None:
    case = read_case(path)
    before, cursor, _ = case["buffer"].partition(CURSOR)
    assert cursor, f"{path.name} has no cursor marker"
    assert region_at(before, case["language"]) == case["expected"]


def test_every_filter_and_scanned_language_has_golden_cases() -> None:
    folders = {path.parent.name for path in cases()}
    assert {step.__name__ for step in postprocess.PIPELINE} | {"cut_at_confidence"} <= folders
    languages = {read_case(path)["language"] for path in cases("syntax_region")}
    families = {id(SYNTAXES[language]) for language in languages if language in SYNTAXES}
    assert families == {id(syntax) for syntax in SYNTAXES.values()}


@given(st.text())
def test_clean_text_is_a_prefix_with_nothing_an_editor_must_not_show(text: str) -> None:
    view = CursorView.around("", "")
    clean = postprocess.clean_text(text, view)
    assert text.replace("\r\n", "\n").startswith(clean)
    assert not any(postprocess._unsafe(char) for char in clean)
    assert "\ufffd" not in clean and "\u202e" not in clean and "\r" not in clean


def test_confidence_cut_without_spans_keeps_the_text() -> None:
    assert cut_at_confidence("anything at all", (), 0.9) == "anything at all"


@given(st.lists(st.tuples(st.text(alphabet="ab _(\n", min_size=1, max_size=4),
                          st.floats(0, 1)), max_size=12), st.floats(0, 1))
def test_confidence_cut_is_a_prefix_ending_at_a_word_boundary(tokens: list[tuple[str, float]],
                                                              minimum: float) -> None:
    text, spans = "", []
    for piece, confidence in tokens:
        spans.append(Span(len(text), len(text) + len(piece), confidence))
        text += piece
    cut = cut_at_confidence(text, spans, minimum)
    assert text.startswith(cut)
    kept_spans = [span for span in spans if span.end <= len(cut)]
    assert all(span.confidence >= minimum for span in kept_spans)
    if cut and len(cut) < len(text):
        assert not (cut[-1].isalnum() and text[len(cut)].isalnum())  # never inside a word


def test_one_decision_for_single_line_requests_and_filters() -> None:
    mid_line = CursorView.around("x = foo(", ")\n")
    end_of_line = CursorView.around("    for ", "\n")
    mid_word = CursorView.around("pri", "nt(x)\n")
    assert (scope(mid_line), scope(end_of_line), scope(mid_word)) == ("line", "block", "word")
    assert single_line(mid_line, None) and single_line(mid_word, None) and not single_line(end_of_line, None)
    assert single_line(end_of_line, 1) and not single_line(end_of_line, 3)
    block = "i in range(n):\n        total += i\n    return total"
    assert suggestion(Completion(block, 9), end_of_line, 0.0, None) == "i in range(n):\n        total += i"
    assert suggestion(Completion(block, 9), end_of_line, 0.0, 1) == "i in range(n):"


def test_suggestion_cuts_before_it_filters() -> None:
    # The spans index the engine's raw text: the cut comes first, then the filters that move text around.
    view = CursorView.around("result = calc(", ")\n")
    completion = Completion("calc(a, b))", 5, (Span(0, 5, 0.9), Span(5, 6, 0.9), Span(6, 9, 0.9),
                                                 Span(9, 11, 0.9)))
    assert suggestion(completion, view, 0.5, None) == "a, b)"
    doubtful = Completion("calc(a, b))", 5, (Span(0, 5, 0.9), Span(5, 6, 0.2), Span(6, 9, 0.9),
                                               Span(9, 11, 0.9)))
    assert suggestion(doubtful, view, 0.5, None) == ""  # "calc(" is only the echo of what was typed


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


def test_scanning_a_long_file_is_quick() -> None:
    import time

    source = ('def f(x):\n    """Doc."""\n    s = "a # b"  # note\n    return x\n' * 3000)
    started = time.perf_counter()
    assert region_at(source + "    y = ", "python") == "code"
    assert time.perf_counter() - started < 0.5  # about 270 kB of Python: a few ms when the machine is quiet
