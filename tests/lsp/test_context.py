"""Context windows cut at line boundaries by character budget, the header and extra context as separate fields,
lone surrogates, and the extra-context ring."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mercury_lsp.context import (
    CHARS_PER_TOKEN,
    build_context,
    prefix_window,
    suffix_window,
    window_chars,
    without_lone_surrogates,
)
from mercury_lsp.documents import Document
from mercury_lsp.engine.api.file_header import file_header
from mercury_lsp.extra_context import ExtraContextRing

BEFORE = "ab\ncde\nfg\nhi"
AFTER = "j\nkl\nmno\np"


def test_prefix_window_keeps_whole_lines_within_budget() -> None:
    assert prefix_window(BEFORE, 2) == "hi"
    assert prefix_window(BEFORE, 4) == "hi"
    assert prefix_window(BEFORE, 5) == "fg\nhi"
    assert prefix_window(BEFORE, 8) == "fg\nhi"
    assert prefix_window(BEFORE, 9) == "cde\nfg\nhi"
    assert prefix_window(BEFORE, 100) == BEFORE


def test_suffix_window_keeps_whole_lines_within_budget() -> None:
    assert suffix_window(AFTER, 1) == "j"
    assert suffix_window(AFTER, 4) == "j\nkl"
    assert suffix_window(AFTER, 7) == "j\nkl"
    assert suffix_window(AFTER, 8) == "j\nkl\nmno"
    assert suffix_window(AFTER, 100) == AFTER


def test_a_single_overlong_line_is_cut_inside() -> None:
    line = "".join(str(n % 10) for n in range(50))
    assert prefix_window(line, 3) == "789"
    assert prefix_window("head\n" + line, 3) == "789"
    assert suffix_window(line, 2) == "01"


@given(st.text(alphabet="ab \n", max_size=300), st.integers(0, 400))
def test_windows_are_within_budget_and_end_at_the_cursor(text: str, budget: int) -> None:
    prefix, suffix = prefix_window(text, budget), suffix_window(text, budget)
    assert text.endswith(prefix) and len(prefix) <= budget
    assert text.startswith(suffix) and len(suffix) <= budget


def test_window_chars_follow_the_engines_positions() -> None:
    assert window_chars(1024, None) == 1024 * CHARS_PER_TOKEN
    assert window_chars(1024, 512) == 512 * CHARS_PER_TOKEN  # never more than the model could use
    assert window_chars(0, 512) == 0


def test_header_and_extra_context_are_fields_of_their_own() -> None:
    context = build_context(BEFORE, AFTER, path="src/m.py", language_id="python", prefix_chars=2,
                            suffix_chars=1, extra="# other.py\nz = 1\n")
    assert context.header == "# src/m.py\n"
    assert context.extra_context == "# other.py\nz = 1\n"
    assert (context.prefix, context.suffix) == ("hi", "j")
    assert file_header("main.rs", "rust") == "// main.rs\n"
    assert len(file_header("x/" * 5000 + "y.py", "python")) < 2_000  # the engine's header limit


def test_lone_surrogates_become_replacement_characters_one_for_one() -> None:
    typed = "s = '\ud83d'\nt = 1"  # a UTF-16 editor mid-way through typing an emoji
    clean = without_lone_surrogates(typed)
    assert clean == "s = '\ufffd'\nt = 1" and len(clean) == len(typed)
    clean.encode("utf-8")
    assert without_lone_surrogates("ok 😀") == "ok 😀"
    context = build_context("x = '\udc00", "'\n", path="p\ud800.py", language_id="python", prefix_chars=100,
                            suffix_chars=100, extra="y = '\ud83d'\n")
    for text in (context.header, context.extra_context, context.prefix, context.suffix):
        text.encode("utf-8")


def test_extra_context_ring_newest_nearest_and_budgeted() -> None:
    ring = ExtraContextRing(capacity=3, chunk_lines=2)
    first = Document("file:///one.py", "python", "one = 1\nuno = 1\n")
    second = Document("file:///two.rs", "rust", "let two = 2;\n")
    current = Document("file:///cur.py", "python", "cur = 0\n")
    ring.remember(first, 0, first.path)
    ring.remember(second, 0, second.path)
    ring.remember(current, 0, current.path)
    rendered = ring.render("file:///cur.py", max_chars=100)
    assert rendered == "# /one.py\none = 1\nuno = 1\n// /two.rs\nlet two = 2;\n"
    assert ring.render("file:///cur.py", max_chars=30) == "// /two.rs\nlet two = 2;\n"
    assert ring.render("file:///cur.py", max_chars=0) == ""
    first.apply_change("ONE = 1\n", (0, 0), (1, 0), "utf-16")
    ring.remember(first, 0, first.path)  # replaces the older chunk of the same place
    ring.forget("file:///two.rs")
    assert ring.render("file:///cur.py", max_chars=100) == "# /one.py\nONE = 1\nuno = 1\n"


def test_a_cut_prefix_window_starts_on_a_stable_line_while_typing() -> None:
    lines = [f"line {i} = {i}" for i in range(200)]
    starts = set()
    for extra in range(40):  # the user types forty more lines; the window keeps its budget
        before = "\n".join(lines[: 150 + extra]) + "\n"
        window = prefix_window(before, 1500)
        first_line = before[: len(before) - len(window)].count("\n")
        assert first_line % 16 == 0 and len(window) <= 1500
        starts.add(first_line)
    assert len(starts) <= 4  # the start moved a grid step at a time, not once per line
