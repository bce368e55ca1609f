"""What the engine sees around the cursor: the file header, and prefix and suffix windows cut at line boundaries.

The engine fits everything to its model's positions (it trims the code and the extra context, never the
header), so the windows here are generous character counts, not token counts: no tokenizer on this side.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mercury_lsp.engine.api.file_header import file_header

# BPE vocabularies average about four characters of code per token.
CHARS_PER_TOKEN = 4
LINE_GRID = 16
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def estimate_tokens(text: str) -> int:
    """Tokens of `text` at CHARS_PER_TOKEN (budgets are in tokens; the windows are in characters)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def window_chars(tokens: int, context_tokens: int | None) -> int:
    """Characters to send for a budget of `tokens`, never more than the model's positions could use."""
    if context_tokens:
        tokens = min(tokens, context_tokens)
    return tokens * CHARS_PER_TOKEN


def without_lone_surrogates(text: str) -> str:
    """`text` with each lone surrogate (a UTF-16 editor's half-typed emoji) as U+FFFD, one character for one.

    JSON lets a client send them; UTF-8 and the engine's tokenizer cannot take them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text


def prefix_window(before: str, max_chars: int) -> str:
    """The end of `before` within `max_chars`: whole lines, plus the cursor line's head.

    The cursor line is cut only when it alone is longer than the budget.
    """
    start = len(before) - max_chars
    if start <= 0:
        return before
    line_start = before.find("\n", start - 1) + 1  # the first line that starts inside the window
    if line_start == 0:
        return before[start:]  # the cursor line alone is over the budget
    return before[_snap_to_line_grid(before, line_start):]


def _snap_to_line_grid(before: str, start: int) -> int:
    """Move a cut window's first line forward to a multiple of LINE_GRID lines, so the window's start stays put
    while the user types and the engine can reuse the keys/values of everything before the cursor."""
    line = before.count("\n", 0, start)
    target = -(-line // LINE_GRID) * LINE_GRID
    if target > before.count("\n"):
        return start  # the grid line would be past the cursor's line: keep the exact window
    snapped = start
    for _ in range(target - line):
        snapped = before.index("\n", snapped) + 1
    return snapped


def suffix_window(after: str, max_chars: int) -> str:
    """The start of `after` within `max_chars`: the cursor line's rest, then whole lines."""
    if len(after) <= max_chars:
        return after
    end = after.rfind("\n", 0, max_chars + 1)
    return after[:end] if end > 0 else after[:max_chars]


@dataclass(frozen=True)
class InfillContext:
    """The text fields of a request: header, extra context, and the windows around the cursor."""

    header: str
    extra_context: str
    prefix: str
    suffix: str


def build_context(before: str, after: str, *, path: str, language_id: str, prefix_chars: int,
                  suffix_chars: int, extra: str) -> InfillContext:
    """Cut the windows, name the file, and make every field valid UTF-8."""
    return InfillContext(
        header=without_lone_surrogates(file_header(path, language_id)),
        extra_context=without_lone_surrogates(extra),
        prefix=without_lone_surrogates(prefix_window(before, prefix_chars)),
        suffix=without_lone_surrogates(suffix_window(after, suffix_chars)),
    )
