"""Context windows cut at line boundaries by token budget, and the extra-context ring."""

from __future__ import annotations

from mercury_lsp.context import (
    LineTokenCounter,
    build_context,
    estimate_tokens,
    prefix_window,
    suffix_window,
)
from mercury_lsp.documents import Document
from mercury_lsp.extra_context import ExtraContextRing


def words(text: str) -> int:
    """A counter that is easy to reason about: one token per whitespace-separated word."""
    return len(text.split())


BEFORE = "a b\nc d e\nf g\nh i"
AFTER = " j\nk l\nm n o\np"


def test_prefix_window_keeps_whole_lines_within_budget() -> None:
    assert prefix_window(BEFORE, 2, words) == "h i"
    assert prefix_window(BEFORE, 4, words) == "f g\nh i"
    assert prefix_window(BEFORE, 8, words) == "c d e\nf g\nh i"
    assert prefix_window(BEFORE, 100, words) == BEFORE


def test_suffix_window_keeps_whole_lines_within_budget() -> None:
    assert suffix_window(AFTER, 1, words) == " j"
    assert suffix_window(AFTER, 3, words) == " j\nk l"
    assert suffix_window(AFTER, 5, words) == " j\nk l"
    assert suffix_window(AFTER, 100, words) == AFTER


def test_a_single_overlong_line_is_cut_inside() -> None:
    line = " ".join(str(n) for n in range(50))
    assert prefix_window(line, 3, words) == " 47 48 49"
    assert suffix_window(line, 2, words) == "0 1 "


def test_estimate_and_line_cache() -> None:
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return estimate_tokens(text)

    counter = LineTokenCounter(counting, capacity=2)
    assert counter("abcdefgh") == 2 and counter("abcdefgh") == 2
    assert calls == ["abcdefgh"]
    counter("x")
    counter("y")
    counter("abcdefgh")
    assert calls == ["abcdefgh", "x", "y", "abcdefgh"]


def test_build_context_puts_extra_and_header_before_prefix() -> None:
    context = build_context(
        BEFORE, AFTER, path="src/m.py", language_id="python", prefix_tokens=2,
        suffix_tokens=1, extra="# other.py\nz = 1\n", count=words,
    )
    assert context.prefix == "# other.py\nz = 1\n# src/m.py\nh i"
    assert context.suffix == " j"


def test_extra_context_ring_newest_nearest_and_budgeted() -> None:
    ring = ExtraContextRing(capacity=3, chunk_lines=2)
    first = Document("file:///one.py", "python", 1, "one = 1\nuno = 1\n")
    second = Document("file:///two.rs", "rust", 1, "let two = 2;\n")
    current = Document("file:///cur.py", "python", 1, "cur = 0\n")
    ring.remember(first, 0, first.path)
    ring.remember(second, 0, second.path)
    ring.remember(current, 0, current.path)
    rendered = ring.render("file:///cur.py", budget=100, count=words)
    assert rendered == "# /one.py\none = 1\nuno = 1\n// /two.rs\nlet two = 2;\n"
    assert ring.render("file:///cur.py", budget=6, count=words) == "// /two.rs\nlet two = 2;\n"
    assert ring.render("file:///cur.py", budget=0, count=words) == ""
    first.apply_change("ONE = 1\n", (0, 0), (1, 0), "utf-16")
    ring.remember(first, 0, first.path)  # replaces the older chunk of the same place
    ring.forget("file:///two.rs")
    assert ring.render("file:///cur.py", budget=100, count=words) == "# /one.py\nONE = 1\nuno = 1\n"


def test_a_cut_prefix_window_starts_on_a_stable_line_while_typing() -> None:
    lines = [f"line {i} = {i}" for i in range(200)]
    starts = set()
    for extra in range(40):  # the user types forty more lines; the window keeps a similar budget
        before = "\n".join(lines[: 150 + extra]) + "\n"
        window = prefix_window(before, 300, words)
        first_line = before[: len(before) - len(window)].count("\n")
        assert first_line % 16 == 0 and words(window) <= 300
        starts.add(first_line)
    assert len(starts) <= 4  # the start moved a grid step at a time, not once per line
