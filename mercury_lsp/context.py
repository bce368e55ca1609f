"""Prefix and suffix windows around the cursor, cut at line boundaries to fit a token budget."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

TokenCounter = Callable[[str], int]

_COMMENT = {
    "c": "//", "cpp": "//", "csharp": "//", "go": "//", "java": "//", "javascript": "//",
    "javascriptreact": "//", "typescript": "//", "typescriptreact": "//", "rust": "//",
    "kotlin": "//", "swift": "//", "scala": "//", "dart": "//", "php": "//", "zig": "//",
    "python": "#", "ruby": "#", "shellscript": "#", "perl": "#", "r": "#", "yaml": "#",
    "toml": "#", "elixir": "#", "julia": "#", "dockerfile": "#", "makefile": "#",
    "lua": "--", "sql": "--", "haskell": "--",
}


def estimate_tokens(text: str) -> int:
    """About four characters per token: the usual figure for BPE vocabularies on code.

    Used where no tokenizer is at hand (a remote engine, or before the local one answers).
    """
    return math.ceil(len(text) / 4)


def tokenizer_counter(model_folder: str | Path) -> TokenCounter | None:
    """Exact counts from the model's own tokenizer.json, or None when the folder has none."""
    path = Path(model_folder) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception:  # a tokenizer the library cannot read: fall back to the estimate
        return None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


class LineTokenCounter:
    """Counts tokens line by line, remembering recent lines (a window moves by one line per keystroke)."""

    def __init__(self, count: TokenCounter, capacity: int = 8192) -> None:
        self._count = count
        self._capacity = capacity
        self._known: OrderedDict[str, int] = OrderedDict()

    def __call__(self, line: str) -> int:
        known = self._known.get(line)
        if known is not None:
            self._known.move_to_end(line)
            return known
        tokens = self._count(line)
        self._known[line] = tokens
        if len(self._known) > self._capacity:
            self._known.popitem(last=False)
        return tokens


def prefix_window(before: str, budget: int, count: TokenCounter) -> str:
    """The end of `before` that fits `budget` tokens: whole lines, plus the cursor line's head.

    The cursor line is kept whole even past the budget unless it alone exceeds it, then its
    last characters are kept.
    """
    start = before.rfind("\n") + 1
    used = count(before[start:])
    if used > budget:
        return _tail_within(before[start:], budget, count)
    while start > 0:
        line_start = before.rfind("\n", 0, start - 1) + 1
        cost = count(before[line_start:start])
        if used + cost > budget:
            break
        used += cost
        start = line_start
    return before[_snap_to_line_grid(before, start) :]


LINE_GRID = 16


def _snap_to_line_grid(before: str, start: int) -> int:
    """Move a cut window's first line forward to a multiple of LINE_GRID lines, so the window's start stays put
    while the user types and the engine can reuse the keys/values of everything before the cursor."""
    if start == 0:
        return 0
    line = before.count("\n", 0, start)
    target = -(-line // LINE_GRID) * LINE_GRID
    if target > before.count("\n"):
        return start  # the grid line would be past the cursor's line: keep the exact window
    snapped = start
    for _ in range(target - line):
        snapped = before.index("\n", snapped) + 1
    return snapped


def suffix_window(after: str, budget: int, count: TokenCounter) -> str:
    """The start of `after` that fits `budget` tokens: the cursor line's rest, then whole lines."""
    end = after.find("\n")
    if end < 0:
        end = len(after)
    used = count(after[:end])
    if used > budget:
        return _head_within(after[:end], budget, count)
    while end < len(after):
        line_end = after.find("\n", end + 1)
        line_end = len(after) if line_end < 0 else line_end
        cost = count(after[end:line_end])
        if used + cost > budget:
            break
        used += cost
        end = line_end
    return after[:end]


def _tail_within(text: str, budget: int, count: TokenCounter) -> str:
    """The longest tail of one long line that fits `budget` (binary search on characters)."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high) // 2
        if count(text[middle:]) <= budget:
            high = middle
        else:
            low = middle + 1
    return text[low:]


def _head_within(text: str, budget: int, count: TokenCounter) -> str:
    """The longest head of one long line that fits `budget`."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def file_header(path: str, language_id: str) -> str:
    """A comment line naming the file, so the model knows its path and language."""
    marker = _COMMENT.get(language_id, "//")
    return f"{marker} {path}\n"


@dataclass(frozen=True)
class InfillContext:
    """What the engine sees: prompt prefix (extra context, header, prefix window) and suffix."""

    prefix: str
    suffix: str


def build_context(
    before: str,
    after: str,
    *,
    path: str,
    language_id: str,
    prefix_tokens: int,
    suffix_tokens: int,
    extra: str,
    count: TokenCounter,
) -> InfillContext:
    """Cut the windows and put the extra context and the file header before the prefix."""
    prefix = prefix_window(before, prefix_tokens, count)
    suffix = suffix_window(after, suffix_tokens, count)
    return InfillContext(prefix=extra + file_header(path, language_id) + prefix, suffix=suffix)
