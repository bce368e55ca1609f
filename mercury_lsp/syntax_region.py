"""Whether the cursor is in code, a comment or a string literal, from the text before it (a small scanner per
language family, not a parser).

Known gaps, each rare at a cursor: JavaScript regular-expression literals, nested Rust block comments, C line
continuations, and a Rust char literal left open (read as a lifetime, so as code).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Region = Literal["code", "comment", "string"]
Closer = Callable[[re.Match], re.Pattern]


def _fixed(pattern: str) -> Closer:
    compiled = re.compile(pattern)
    return lambda opener: compiled


def _string(quote: str, multiline: bool) -> Closer:
    """The rest of a string literal with backslash escapes; one that may not span lines ends at a line break."""
    end = re.escape(quote) if multiline else f"{re.escape(quote)}|\\n"
    body = f"[^{re.escape(quote)}\\\\]" if multiline else f"[^{re.escape(quote)}\\\\\\n]"
    return _fixed(f"(?:{body}|\\\\[\\s\\S])*(?:{end})")


@dataclass(frozen=True)
class Syntax:
    """Openers of comments and strings (named groups), and for each the pattern that matches up to its end."""

    opener: re.Pattern
    closers: dict[str, Closer]
    regions: dict[str, Region]


LINE_COMMENT = _fixed(r"[^\n]*\n")
BLOCK_COMMENT = _fixed(r"[\s\S]*?\*/")
CLOSED = _fixed("")  # the opener matched the whole literal

PYTHON = Syntax(
    re.compile(r"""(?P<comment>\#)|(?P<triple_double>\"\"\")|(?P<triple_single>''')|(?P<double>")|(?P<single>')"""),
    {
        "comment": LINE_COMMENT,
        "triple_double": _fixed(r'(?:[^\\]|\\[\s\S])*?"""'),
        "triple_single": _fixed(r"(?:[^\\]|\\[\s\S])*?'''"),
        "double": _string('"', multiline=False),
        "single": _string("'", multiline=False),
    },
    {"comment": "comment", "triple_double": "string", "triple_single": "string", "double": "string",
     "single": "string"},
)

C_FAMILY = Syntax(
    re.compile(r"""(?P<line>//)|(?P<block>/\*)|(?P<double>")|(?P<single>')"""),
    {"line": LINE_COMMENT, "block": BLOCK_COMMENT, "double": _string('"', multiline=False),
     "single": _string("'", multiline=False)},
    {"line": "comment", "block": "comment", "double": "string", "single": "string"},
)

CPP = Syntax(
    re.compile(r"""(?P<line>//)|(?P<block>/\*)|(?P<raw>(?<!\w)(?:u8|u|U|L)?R"(?P<delimiter>[^()\\\s]{0,16})\()"""
               r"""|(?P<double>")|(?P<single>')"""),
    {**C_FAMILY.closers,
     "raw": lambda opener: re.compile(r"[\s\S]*?\)" + re.escape(opener["delimiter"]) + '"')},
    {**C_FAMILY.regions, "raw": "string"},
)

JAVASCRIPT = Syntax(
    re.compile(r"""(?P<line>//)|(?P<block>/\*)|(?P<double>")|(?P<single>')|(?P<template>`)"""),
    {**C_FAMILY.closers, "template": _string("`", multiline=True)},
    {**C_FAMILY.regions, "template": "string"},
)

GO = Syntax(
    re.compile(r"""(?P<line>//)|(?P<block>/\*)|(?P<double>")|(?P<single>')|(?P<raw>`)"""),
    {**C_FAMILY.closers, "raw": _fixed(r"[^`]*`")},
    {**C_FAMILY.regions, "raw": "string"},
)

RUST = Syntax(
    re.compile(r"""(?P<line>//)|(?P<block>/\*)|(?P<raw>(?<!\w)b?r(?P<hashes>\#*)")|(?P<double>")"""
               r"""|(?P<char>b?'(?:[^'\\\n]|\\(?:[nrt0\\'"]|x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}))')"""),
    {"line": LINE_COMMENT, "block": BLOCK_COMMENT, "double": _string('"', multiline=True), "char": CLOSED,
     "raw": lambda opener: re.compile(r'[\s\S]*?"' + opener["hashes"])},
    {"line": "comment", "block": "comment", "double": "string", "raw": "string", "char": "string"},
)

SYNTAXES: dict[str, Syntax] = {
    "python": PYTHON,
    "javascript": JAVASCRIPT, "javascriptreact": JAVASCRIPT, "typescript": JAVASCRIPT,
    "typescriptreact": JAVASCRIPT,
    "go": GO,
    "rust": RUST,
    "c": C_FAMILY, "cpp": CPP, "java": C_FAMILY,
}


def region_at(before: str, language_id: str) -> Region:
    """The region the cursor at the end of `before` is in; "code" for languages without a scanner."""
    syntax = SYNTAXES.get(language_id)
    if syntax is None:
        return "code"
    at = 0
    while (opener := syntax.opener.search(before, at)) is not None:
        kind = opener.lastgroup  # the outer group: an inner one (a raw string's delimiter) closes before it
        end = syntax.closers[kind](opener).match(before, opener.end())
        if end is None:
            return syntax.regions[kind]
        at = end.end()
    return "code"

