"""Committed tokens to the text an editor may insert, with the confidence of the tokens behind each character.

Byte-level tokens can end inside a UTF-8 character, and a weak model can emit bytes that never form one: those
bytes are dropped, never turned into U+FFFD. Control characters other than tab and line breaks, and the bidi
overrides that make code read differently from how it runs, are dropped too.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from mercury_lsp.engine.api.infill import Span

# Explicit embeddings, overrides and isolates (the "Trojan Source" characters).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_clean(char: str) -> bool:
    """Whether a character may reach the editor."""
    code = ord(char)
    if char in "\t\n\r":
        return True
    if code < 0x20 or 0x7F <= code < 0xA0:
        return False
    return char not in BIDI_CONTROLS and char != "\ufffd"


def text_with_spans(pieces: Iterable[tuple[bytes, float]]) -> tuple[str, tuple[Span, ...]]:
    """Decode (token bytes, confidence) pairs into clean text and spans that tile it.

    A span covers the characters a token completed; a character whose bytes came from several tokens goes to
    the token that completed it, with the lowest confidence among them. A token that completed no character
    passes its confidence on to the next one.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    text: list[str] = []
    spans: list[Span] = []
    length = 0
    carried: float | None = None
    for data, confidence in pieces:
        lowest = confidence if carried is None else min(carried, confidence)
        chars = "".join(c for c in decoder.decode(data) if is_clean(c))
        if not chars:
            carried = lowest if data else carried
            continue
        text.append(chars)
        spans.append(Span(length, length + len(chars), lowest))
        length += len(chars)
        carried = None
    return "".join(text), tuple(spans)


def cut_spans(text: str, spans: tuple[Span, ...], end: int) -> tuple[str, tuple[Span, ...]]:
    """The first `end` characters of the text and the spans inside them (the last one shortened)."""
    if end >= len(text):
        return text, spans
    kept = tuple(Span(s.start, min(s.end, end), s.confidence) for s in spans if s.start < end)
    return text[:end], kept
