"""Open text documents kept in sync with the client (full and incremental changes)."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from mercury_lsp.positions import Encoding, column_to_index, index_to_column

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass
class Document:
    """One open document: its text and where each line starts."""

    uri: str
    language_id: str
    text: str
    _line_starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._index_lines()

    def _index_lines(self) -> None:
        self._line_starts = [0] + [match.end() for match in _LINE_BREAK.finditer(self.text)]

    @property
    def line_count(self) -> int:
        return len(self._line_starts)

    def line(self, number: int) -> str:
        """Text of line `number` without its line break ('' past the end)."""
        if not 0 <= number < self.line_count:
            return ""
        start = self._line_starts[number]
        end = self._line_starts[number + 1] if number + 1 < self.line_count else len(self.text)
        return self.text[start:end].rstrip("\r\n")

    def excerpt(self, first_line: int, line_count: int) -> str:
        """Lines first_line .. first_line + line_count - 1 with their line breaks."""
        if first_line >= self.line_count:
            return ""
        start = self._line_starts[max(0, first_line)]
        stop = first_line + line_count
        end = self._line_starts[stop] if stop < self.line_count else len(self.text)
        return self.text[start:end]

    def word_before(self, offset: int) -> str:
        """The identifier characters that end at `offset` (the word being typed)."""
        start = offset
        while start > 0 and (self.text[start - 1].isalnum() or self.text[start - 1] == "_"):
            start -= 1
        return self.text[start:offset]

    def offset_at(self, line: int, column: int, encoding: Encoding) -> int:
        """Index into `text` of a client position; positions past a line or the end are clamped."""
        if line < 0:
            return 0
        if line >= self.line_count:
            return len(self.text)
        return self._line_starts[line] + column_to_index(self.line(line), column, encoding)

    def position_at(self, offset: int, encoding: Encoding) -> tuple[int, int]:
        """Client (line, column) of the index `offset` into `text`."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        start = self._line_starts[line]
        return line, index_to_column(self.line(line), offset - start, encoding)

    def apply_change(
        self, text: str, start: tuple[int, int] | None, end: tuple[int, int] | None,
        encoding: Encoding,
    ) -> None:
        """Replace the range start..end (client positions) by `text`; no range = whole text."""
        if start is None or end is None:
            self.text = text
            self._index_lines()
            return
        first = self.offset_at(*start, encoding)
        last = max(first, self.offset_at(*end, encoding))
        removed = self.text[first:last]
        self.text = self.text[:first] + text + self.text[last:]
        if _LINE_BREAK.search(removed) or _LINE_BREAK.search(text) or self.text[first - 1 : first] == "\r":
            self._index_lines()
            return
        # A keystroke inside one line: later lines only move (re-indexing costs ~0.5 ms per 100 kB).
        line = bisect.bisect_right(self._line_starts, first) - 1
        delta = len(text) - len(removed)
        if delta:
            self._line_starts[line + 1 :] = [start + delta for start in self._line_starts[line + 1 :]]

    @property
    def path(self) -> str:
        """The file path of a file:// URI, else the URI itself."""
        parsed = urlparse(self.uri)
        return unquote(parsed.path) if parsed.scheme == "file" else self.uri
