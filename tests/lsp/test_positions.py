"""Position encodings and incremental document sync on non-ASCII text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mercury_lsp.documents import Document
from mercury_lsp.positions import column_to_index, index_to_column

LINE = "s = '😀漢字' + x"  # an emoji (2 UTF-16 units, 4 UTF-8 bytes) and two CJK (1 and 3)


@pytest.mark.parametrize(
    ("encoding", "column", "index"),
    [
        ("utf-16", 5, 5),  # after the quote, before the emoji
        ("utf-16", 7, 6),  # after the emoji
        ("utf-16", 9, 8),  # after 漢字
        ("utf-8", 9, 6),
        ("utf-8", 15, 8),
        ("utf-32", 6, 6),
        ("utf-32", 8, 8),
    ],
)
def test_column_to_index_on_emoji_and_cjk(encoding: str, column: int, index: int) -> None:
    assert column_to_index(LINE, column, encoding) == index
    assert index_to_column(LINE, index, encoding) == column


def test_column_inside_a_character_moves_to_its_start() -> None:
    assert column_to_index(LINE, 6, "utf-16") == 5  # between the emoji's two surrogates
    assert column_to_index(LINE, 7, "utf-8") == 5


def test_columns_past_the_line_clamp_to_its_end() -> None:
    for encoding in ("utf-8", "utf-16", "utf-32"):
        assert column_to_index(LINE, 10_000, encoding) == len(LINE)
    assert index_to_column(LINE, len(LINE), "utf-16") == len(LINE) + 1
    assert index_to_column(LINE, len(LINE), "utf-8") == len(LINE.encode())


def test_document_offsets_and_positions() -> None:
    doc = Document("file:///a.py", "python", "ab\r\n😀c\nlast")
    assert doc.line_count == 3
    assert doc.line(1) == "😀c"
    assert doc.offset_at(1, 2, "utf-16") == 5
    assert doc.position_at(5, "utf-16") == (1, 2)
    assert doc.position_at(5, "utf-8") == (1, 4)
    assert doc.offset_at(99, 0, "utf-16") == len(doc.text)
    assert doc.offset_at(0, 99, "utf-16") == 2  # clamped before the line break
    assert doc.excerpt(1, 1) == "😀c\n"


def test_word_before_the_cursor() -> None:
    doc = Document("file:///a.py", "python", "x = my_var\nnext")
    assert doc.word_before(10) == "my_var"
    assert doc.word_before(4) == ""
    assert doc.word_before(11) == ""  # a line break ends the word


def test_incremental_change_in_utf16_and_utf8() -> None:
    doc = Document("file:///a.py", "python", "x = '😀'\n")
    doc.apply_change("漢", (0, 7), (0, 7), "utf-16")  # after the emoji, before the quote
    assert doc.text == "x = '😀漢'\n"
    doc.apply_change("", (0, 5), (0, 12), "utf-8")  # delete emoji and 漢 (4 + 3 bytes)
    assert doc.text == "x = ''\n"
    doc.apply_change("whole", None, None, "utf-16")
    assert doc.text == "whole"


@given(
    text=st.text(alphabet=st.sampled_from("ab \n😀漢é"), max_size=40),
    line=st.integers(-3, 12),
    column=st.integers(-3, 60),
    encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]),
)
def test_any_position_maps_to_a_character_boundary(text, line, column, encoding) -> None:
    doc = Document("file:///p", "plaintext", text)
    offset = doc.offset_at(line, column, encoding)
    assert 0 <= offset <= len(text)
    back = doc.position_at(offset, encoding)
    assert doc.offset_at(*back, encoding) == offset


@given(
    text=st.text(alphabet=st.sampled_from("ab\n\r😀"), max_size=30),
    edits=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 8), st.integers(0, 6), st.integers(0, 8),
                  st.text(alphabet=st.sampled_from("xy\n\r😀"), max_size=4)),
        max_size=6,
    ),
)
def test_incremental_line_index_matches_a_fresh_one(text, edits) -> None:
    doc = Document("file:///p", "plaintext", text)
    for line, column, end_line, end_column, insert in edits:
        start, end = sorted([(line, column), (end_line, end_column)])
        doc.apply_change(insert, start, end, "utf-16")
        fresh = Document("file:///p", "plaintext", doc.text)
        assert doc.line_count == fresh.line_count
        assert [doc.line(n) for n in range(doc.line_count)] == [fresh.line(n) for n in range(fresh.line_count)]
        assert all(doc.offset_at(n, 0, "utf-32") == fresh.offset_at(n, 0, "utf-32") for n in range(doc.line_count))
