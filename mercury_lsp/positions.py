"""Columns in the negotiated position encoding (UTF-8, UTF-16, UTF-32) <-> Python string indices."""

from __future__ import annotations

from typing import Literal

Encoding = Literal["utf-8", "utf-16", "utf-32"]


def code_units(char: str, encoding: Encoding) -> int:
    """How many code units one character takes in `encoding`."""
    point = ord(char)
    if encoding == "utf-32":
        return 1
    if encoding == "utf-16":
        return 2 if point > 0xFFFF else 1
    if point < 0x80:
        return 1
    if point < 0x800:
        return 2
    return 3 if point < 0x10000 else 4


def column_to_index(line: str, column: int, encoding: Encoding) -> int:
    """Index into `line` (no line break) of a client column, clamped to the line.

    A column inside a multi-unit character moves to that character's start.
    """
    if encoding == "utf-32" or line.isascii():
        return max(0, min(column, len(line)))
    units = 0
    for index, char in enumerate(line):
        units += code_units(char, encoding)
        if units > column:
            return index
    return len(line)


def index_to_column(line: str, index: int, encoding: Encoding) -> int:
    """Client column of the character boundary at `index` in `line`."""
    head = line[: max(0, index)]
    if encoding == "utf-32" or head.isascii():
        return len(head)
    return sum(code_units(char, encoding) for char in head)

