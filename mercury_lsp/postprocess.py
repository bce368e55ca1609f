"""Filters that turn raw engine text into a suggestion worth showing; each is a pure function."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from mercury_lsp.engine.api.infill import Completion, Span

_BLOCK_OPENER = re.compile(r"(?:[:{(\[]|=>|\bdo|\bthen|\bbegin)\s*(?:#.*|//.*)?$")
_CLOSER = re.compile(r"^\s*(?:[})\]]|(?:end|fi|done|esac)\s*$)")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
_WORD = re.compile(r"\w")
_WORD_RUN = re.compile(r"\w*")
_TRAILING_BLANK_LINES = re.compile(r"(?:\n[ \t]*)+$")
# Invisible format characters that may stay: the joiners inside emoji and Indic words.
_JOINERS = frozenset("\u200c\u200d")

Scope = Literal["word", "line", "block"]


@dataclass(frozen=True)
class CursorView:
    """What the filters know about the buffer around the cursor."""

    line_prefix: str
    line_suffix: str
    next_lines: tuple[str, ...]
    indent_unit: str
    previous_lines: tuple[str, ...] = ()  # the lines above the cursor's, nearest last

    @classmethod
    def around(cls, before: str, after: str, lookahead: int = 8) -> CursorView:
        """Build the view from the document text before and after the cursor."""
        line_prefix = before[before.rfind("\n") + 1 :]
        rest = after.split("\n", lookahead + 1)
        above = before[: len(before) - len(line_prefix)].rsplit("\n", lookahead + 1)[-lookahead - 1 : -1]
        return cls(
            line_prefix=line_prefix,
            line_suffix=rest[0].rstrip("\r"),
            next_lines=tuple(line.rstrip("\r") for line in rest[1 : lookahead + 1]),
            indent_unit=detect_indent_unit(before[-4000:] + after[:4000]),
            previous_lines=tuple(line.rstrip("\r") for line in above),
        )


Filter = Callable[[str, CursorView], str]


def scope(view: CursorView) -> Scope:
    """How far a suggestion may reach: the rest of the word when the cursor splits one, the rest of the line when
    other text follows the cursor on it, else a block."""
    if _WORD.match(view.line_prefix[-1:]) and _WORD.match(view.line_suffix[:1]):
        return "word"
    return "line" if view.line_suffix.strip() else "block"


def single_line(view: CursorView, max_lines: int | None) -> bool:
    """Whether a suggestion here has one line at most: decided here for the request and for the filters."""
    return max_lines == 1 or scope(view) != "block"


def detect_indent_unit(text: str) -> str:
    """The file's indentation step: a tab, or the most common increase in leading spaces."""
    tabs = spaces = 0
    steps: dict[int, int] = {}
    previous = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        indent = line[: len(line) - len(line.lstrip())]
        if indent.startswith("\t"):
            tabs += 1
            continue
        width = len(indent)
        if width:
            spaces += 1
        if width > previous:
            steps[width - previous] = steps.get(width - previous, 0) + 1
        previous = width
    if tabs > spaces:
        return "\t"
    if not steps:
        return "    "
    return " " * max(steps, key=lambda step: (steps[step], -step))


def _indent_width(line: str, tab_width: int = 4) -> int:
    indent = line[: len(line) - len(line.lstrip())]
    return sum(tab_width if char == "\t" else 1 for char in indent)


def _unsafe(char: str) -> bool:
    """Characters that must not reach an editor: replacement characters (broken UTF-8), control characters
    other than tab and newline, surrogates, and invisible format characters (bidi overrides, tag characters)."""
    if char in "\t\n":
        return False
    category = unicodedata.category(char)
    return char == "\ufffd" or category in ("Cc", "Cs") or (category == "Cf" and char not in _JOINERS)


def clean_text(text: str, view: CursorView) -> str:
    """Cut the text at its first character that must not reach an editor (line ends become "\\n" first).

    Our engine never sends them; other backends might.
    """
    text = text.replace("\r\n", "\n")
    for index, char in enumerate(text):
        if _unsafe(char):
            return text[:index]
    return text


def drop_typed_repeat(text: str, view: CursorView) -> str:
    """Drop a start that repeats what the user just typed on this line ("ret" + "return x")."""
    typed = view.line_prefix.lstrip()[-200:]
    for start in range(len(typed) - 1):
        tail = typed[start:]
        if tail[0].isspace():
            continue
        mid_word = start > 0 and _WORD.match(typed[start - 1]) and _WORD.match(tail[0])
        if not mid_word and text.startswith(tail):
            return text[len(tail) :]
    return text


def _join_word(text: str, view: CursorView) -> str:
    """Word characters only, so the text joins the rest of the word after the cursor; where they repeat that
    rest, they stop before it."""
    head = _WORD_RUN.match(text).group()
    rest = _WORD_RUN.match(view.line_suffix).group()
    repeat = head.find(rest)
    return head[:repeat] if repeat >= 0 else head


def limit_scope(text: str, view: CursorView) -> str:
    """Within a word, what joins it; one line mid-line; after a block opener or on a blank line, the block that
    indentation ends."""
    kind = scope(view)
    if kind == "word":
        return _join_word(text, view)
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    if kind == "line":
        return lines[0]
    completed = view.line_prefix + lines[0]
    if view.line_prefix.strip():
        if not _BLOCK_OPENER.search(completed):
            return lines[0]
        # The block is what is indented deeper than the opener, plus a closer at its level.
        floor = _indent_width(completed) + 1
        closer_width = _indent_width(completed)
    else:
        # On a blank line the block is what stays at or above the first line's indentation.
        floor = _indent_width(completed)
        closer_width = -1
    kept = [lines[0]]
    for line in lines[1:]:
        if not line.strip():
            kept.append(line)
            continue
        width = _indent_width(line)
        if width >= floor:
            kept.append(line)
            continue
        if width == closer_width and _CLOSER.match(line):
            kept.append(line)
        break
    return _without_trailing_blank_lines("\n".join(kept))


def normalize_indentation(text: str, view: CursorView) -> str:
    """Rewrite the leading whitespace of lines after the first in the file's indentation style."""
    lines = text.split("\n")
    indents = [line[: len(line) - len(line.lstrip())] for line in lines[1:] if line.strip()]
    uses_tabs = any("\t" in indent for indent in indents)
    space_widths = [len(indent) for indent in indents if indent and not uses_tabs]
    if not indents or (uses_tabs and view.indent_unit == "\t"):
        return text
    # The model's step: the gcd of its indentations; 8 is read as two steps of 4.
    step = 4 if uses_tabs else math.gcd(*space_widths) if space_widths else 0
    if step > 4 and step % 4 == 0:
        step = 4
    if step == 0 or (not uses_tabs and " " * step == view.indent_unit):
        return text
    converted = [lines[0]]
    for line in lines[1:]:
        levels, remainder = divmod(_indent_width(line), step)
        converted.append(view.indent_unit * levels + " " * remainder + line.lstrip(" \t"))
    return "\n".join(converted)


def _without_trailing_blank_lines(text: str) -> str:
    return _TRAILING_BLANK_LINES.sub("", text)


def _imbalance(line: str) -> int:
    """How far a line is from balanced brackets and quotes."""
    total = sum(abs(line.count(opener) - line.count(closer)) for opener, closer in _PAIRS.items())
    return total + sum(line.count(quote) % 2 for quote in "\"'`")


def drop_suffix_overlap(text: str, view: CursorView) -> str:
    """Drop text that repeats what already follows the cursor (a closing bracket, the next line)."""
    lines = text.split("\n")
    rest = view.line_suffix.strip()
    if rest and lines[0].rstrip().endswith(rest):
        trimmed = lines[0].rstrip()[: -len(rest)]
        before = view.line_prefix + lines[0] + view.line_suffix
        after = view.line_prefix + trimmed + view.line_suffix
        if _imbalance(after) <= _imbalance(before):
            lines[0] = trimmed
    following = next((line.strip() for line in view.next_lines if line.strip()), None)
    if following is not None and not rest:
        for index in range(1, len(lines)):
            if lines[index].strip() == following:
                lines = lines[:index]
                break
    return _without_trailing_blank_lines("\n".join(lines))


def drop_repeated_lines(text: str, view: CursorView) -> str:
    """Small models loop: cut the text where a line repeats the one before it, and offer nothing on an empty line
    when the text starts by repeating the line above the cursor (a copy the user would only have to delete)."""
    lines = text.split("\n")
    for index in range(1, len(lines)):
        if lines[index].strip() and lines[index].strip() == lines[index - 1].strip():
            lines = lines[:index]
            break
    above = next((line.strip() for line in reversed(view.previous_lines) if line.strip()), None)
    if not view.line_prefix.strip() and not view.line_suffix.strip() and lines[0].strip() == above:
        return ""
    return _without_trailing_blank_lines("\n".join(lines))


def drop_blank(text: str, view: CursorView) -> str:
    """Nothing instead of a suggestion that is only whitespace."""
    return text if text.strip() else ""


PIPELINE: tuple[Filter, ...] = (
    clean_text,
    drop_typed_repeat,
    limit_scope,
    normalize_indentation,
    drop_suffix_overlap,
    drop_repeated_lines,
    drop_blank,
)


def limit_lines(text: str, max_lines: int | None) -> str:
    """At most `max_lines` lines (None: no limit)."""
    if max_lines is None:
        return text
    return _without_trailing_blank_lines("\n".join(text.split("\n")[:max_lines]))


def cut_at_confidence(text: str, spans: Sequence[Span], minimum: float) -> str:
    """The text before the first span less confident than `minimum`, ending at a word boundary.

    A doubtful token inside a word takes its whole word with it, so a suggestion whose first word is doubtful
    comes back empty. Without spans (a backend that gives none) the text is kept.
    """
    low = next((span.start for span in spans if span.confidence < minimum), None)
    if low is None or low >= len(text):
        return text
    cut = low
    while cut > 0 and _WORD.match(text[cut - 1]) and _WORD.match(text[cut]):
        cut -= 1
    return text[:cut].rstrip()


def postprocess(text: str, view: CursorView, max_lines: int | None = None) -> str:
    """Run every filter in order, then keep at most `max_lines` lines."""
    for step in PIPELINE:
        text = step(text, view)
    return limit_lines(text, max_lines)


def suggestion(completion: Completion, view: CursorView, min_confidence: float, max_lines: int | None) -> str:
    """What to show for one of the engine's completions: cut where its confidence drops, then filtered."""
    return postprocess(cut_at_confidence(completion.text, completion.spans, min_confidence), view, max_lines)
