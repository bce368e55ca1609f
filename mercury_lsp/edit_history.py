"""Each open document's recent edits, as line hunks that print as unified diffs (the next-edit prompt's history).

Keystrokes on the same lines within a burst merge into one hunk, as Inception advises for Mercury Edit ("if a
user made multiple modifications in the same area, combine them into a single unidiff"); a hunk that ends where
it began (typed, then undone) disappears. The history is bounded in count, age and characters.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

MAX_EDITS = 8
MAX_AGE_S = 600.0
MAX_CHARS = 4000  # per document, over the hunks' lines: a paste of a whole file must not fill the prompt
MERGE_WITHIN_S = 5.0  # a pause longer than this starts a new hunk even on the same lines


@dataclass
class Hunk:
    """Lines `removed` at `line` (0-based, in the text before) became `added` (at `line` in the text after)."""

    line: int
    removed: list[str]
    added: list[str]
    at: float  # monotonic time of the last keystroke merged into it

    @property
    def chars(self) -> int:
        return sum(len(text) + 1 for text in self.removed + self.added)

    def unified(self, path: str) -> str:
        """The hunk as a unified diff of `path` (line numbers 1-based, as `diff -U0` prints them)."""
        old = f"{self.line + (1 if self.removed else 0)},{len(self.removed)}"
        new = f"{self.line + (1 if self.added else 0)},{len(self.added)}"
        body = [f"-{text}" for text in self.removed] + [f"+{text}" for text in self.added]
        return "\n".join([f"--- {path}", f"+++ {path}", f"@@ -{old} +{new} @@", *body]) + "\n"

    def last_line(self) -> int:
        """The last line the hunk wrote, in the text after it."""
        return self.line + max(len(self.added) - 1, 0)


def split_lines(text: str) -> list[str]:
    return _LINE_BREAK.split(text)


def line_hunk(before: list[str], after: list[str]) -> tuple[int, list[str], list[str]] | None:
    """The one hunk between two line lists: what is left after their common first and last lines; None if equal."""
    first = 0
    limit = min(len(before), len(after))
    while first < limit and before[first] == after[first]:
        first += 1
    if first == len(before) == len(after):
        return None
    last = 0
    while last < limit - first and before[-1 - last] == after[-1 - last]:
        last += 1
    return first, before[first : len(before) - last], after[first : len(after) - last]


class EditHistory:
    """One document's recent hunks, oldest first."""

    def __init__(self, max_edits: int = MAX_EDITS, max_age_s: float = MAX_AGE_S, max_chars: int = MAX_CHARS) -> None:
        self.max_edits, self.max_age_s, self.max_chars = max_edits, max_age_s, max_chars
        self._hunks: deque[Hunk] = deque()

    def record(self, line: int, removed: list[str], added: list[str], now: float) -> None:
        """Lines `removed` starting at `line` were replaced by `added` (whole lines, before and after)."""
        trimmed = line_hunk(removed, added)
        if trimmed is None:
            return
        offset, removed, added = trimmed
        line += offset
        last = self._hunks[-1] if self._hunks else None
        if last is not None and now - last.at <= MERGE_WITHIN_S and last.line <= line \
                and line + len(removed) <= last.line + len(last.added):
            at = line - last.line
            merged = last.added[:at] + added + last.added[at + len(removed) :]
            self._hunks.pop()
            rest = line_hunk(last.removed, merged)
            if rest is not None:  # typed and then undone: nothing is left of it
                offset, old, new = rest
                self._hunks.append(Hunk(last.line + offset, old, new, now))
        else:
            self._hunks.append(Hunk(line, removed, added, now))
        self._trim(now)

    def hunks(self, now: float) -> list[Hunk]:
        """The hunks still within the bounds, oldest first."""
        self._trim(now)
        return list(self._hunks)

    def _trim(self, now: float) -> None:
        while self._hunks and (len(self._hunks) > self.max_edits or now - self._hunks[0].at > self.max_age_s):
            self._hunks.popleft()
        while len(self._hunks) > 1 and sum(h.chars for h in self._hunks) > self.max_chars:
            self._hunks.popleft()
        if self._hunks and self._hunks[0].chars > self.max_chars:  # one huge hunk (a paste): its size says enough
            self._hunks.popleft()


class EditHistories:
    """The edit history of every open document, by URI; a closed document's history goes with it."""

    def __init__(self, max_edits: int = MAX_EDITS, max_age_s: float = MAX_AGE_S, max_chars: int = MAX_CHARS) -> None:
        self._limits = (max_edits, max_age_s, max_chars)
        self._by_uri: dict[str, EditHistory] = {}

    def record(self, uri: str, line: int, removed: list[str], added: list[str], now: float) -> None:
        history = self._by_uri.get(uri)
        if history is None:
            history = self._by_uri[uri] = EditHistory(*self._limits)
        history.record(line, removed, added, now)

    def hunks(self, uri: str, now: float) -> list[Hunk]:
        history = self._by_uri.get(uri)
        return history.hunks(now) if history is not None else []

    def unified(self, uri: str, path: str, now: float) -> str:
        """Every hunk as a unified diff, the most recent last."""
        return "".join(hunk.unified(path) for hunk in self.hunks(uri, now))

    def forget(self, uri: str) -> None:
        self._by_uri.pop(uri, None)
