"""A small ring of code chunks from other open or recently edited documents."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mercury_lsp.documents import Document
from mercury_lsp.engine.api.file_header import file_header


@dataclass(frozen=True)
class Chunk:
    """A few lines of one document, around where it was opened or last edited."""

    uri: str
    path: str
    language_id: str
    first_line: int
    text: str


class ExtraContextRing:
    """The most recent chunks, newest first; a new chunk replaces an overlapping one of its document."""

    def __init__(self, capacity: int = 16, chunk_lines: int = 32) -> None:
        self.capacity = capacity
        self.chunk_lines = chunk_lines
        self._chunks: deque[Chunk] = deque()

    def remember(self, document: Document, around_line: int, path: str) -> None:
        """Take `chunk_lines` lines of `document` centred on `around_line` into the ring, shown as `path`."""
        uri = document.uri
        first = max(0, min(around_line - self.chunk_lines // 2, document.line_count - self.chunk_lines))
        text = document.excerpt(first, self.chunk_lines)
        if not text.strip():
            return
        chunk = Chunk(uri, path, document.language_id, first, text)
        self._chunks = deque(
            old for old in self._chunks
            if not (old.uri == uri and abs(old.first_line - first) < self.chunk_lines)
        )
        self._chunks.appendleft(chunk)
        while len(self._chunks) > self.capacity:
            self._chunks.pop()

    def forget(self, uri: str) -> None:
        """Drop every chunk of a closed document."""
        self._chunks = deque(chunk for chunk in self._chunks if chunk.uri != uri)

    def render(self, exclude_uri: str, max_chars: int) -> str:
        """Chunks of other documents, newest first, that fit `max_chars`, each under its file header.

        The newest chunk ends up nearest to the prefix, where the model weighs it most.
        """
        if max_chars <= 0:
            return ""
        picked: list[str] = []
        used = 0
        for chunk in self._chunks:
            if chunk.uri == exclude_uri:
                continue
            block = file_header(chunk.path, chunk.language_id) + chunk.text
            if not block.endswith("\n"):
                block += "\n"
            cost = len(block)
            if used + cost > max_chars:
                continue
            picked.append(block)
            used += cost
        return "".join(reversed(picked))
