"""Turns a cursor in an open document into suggestions: context, scheduling, engine call, filters."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mercury_lsp.context import build_context, estimate_tokens, window_chars
from mercury_lsp.documents import Document
from mercury_lsp.edit_history import EditHistories, split_lines
from mercury_lsp.engine.api.edit_completions import EditPrompt, build_edit_prompt
from mercury_lsp.engine.api.infill import SINGLE_LINE_TOKENS, InfillRequest
from mercury_lsp.engine_client import EngineClient, EngineError, InfillResult
from mercury_lsp.extra_context import ExtraContextRing
from mercury_lsp.lifecycle import EngineLink
from mercury_lsp.positions import Encoding
from mercury_lsp.postprocess import (
    CursorView,
    clean_text,
    normalize_indentation,
    single_line,
    suggestion,
)
from mercury_lsp.scheduler import AdaptiveDebounce, CachedCompletion, CompletionCache, LatestOnly
from mercury_lsp.settings import Settings, TriggerKind
from mercury_lsp.syntax_region import region_at

log = logging.getLogger(__name__)

Source = Literal["engine", "cache", "none"]
# A fill regenerates a span: give the canvas room for a rewrite somewhat longer than the original.
FILL_GROWTH = 2
FILL_MAX_TOKENS = 256


@dataclass(frozen=True)
class Suggestions:
    """The texts to show at a cursor and where they came from."""

    texts: tuple[str, ...]
    source: Source
    result: InfillResult | None = None
    latency_ms: float = 0.0
    error: EngineError | None = None


NOTHING = Suggestions((), "none")


def wanted(settings: Settings, trigger: TriggerKind, before: str, language_id: str) -> bool:
    """Whether the user wants a suggestion for this trigger at a cursor after `before`."""
    if trigger not in settings.trigger_kinds:
        return False
    if not (settings.disable_in_comments or settings.disable_in_strings):
        return True  # the scan costs a pass over the text before the cursor: only when asked for
    region = region_at(before, language_id)
    return not ((region == "comment" and settings.disable_in_comments)
                or (region == "string" and settings.disable_in_strings))


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass(frozen=True)
class Prefetch:
    """Engine work started for the cursor after an accepted suggestion."""

    before: str
    after: str
    task: asyncio.Future


class Completer:
    """Holds the open documents and answers completion and fill requests against the engine."""

    def __init__(self, engine: EngineLink, on_result: Callable[[Suggestions], None]) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.encoding: Encoding = "utf-16"
        self.root: str | None = None
        self.documents: dict[str, Document] = {}
        self.cache = CompletionCache()
        self.latest = LatestOnly()
        self.ring = ExtraContextRing()
        self.history = EditHistories()
        self.debounce = AdaptiveDebounce(self.settings.debounce_ms, self.settings.debounce_max_ms)
        self._prefetches: dict[str, Prefetch] = {}
        self._on_result = on_result

    def configure(self, settings: Settings) -> None:
        if settings != self.settings:
            # What was cached came from the old settings (model, engine, canvas, filters): none of it holds.
            self.cache.clear()
            for uri in list(self._prefetches):
                self._cancel_prefetch(uri)
        self.settings = settings
        self.engine.configure(settings)
        self.debounce = AdaptiveDebounce(settings.debounce_ms, settings.debounce_max_ms)

    # Documents -------------------------------------------------------------------------------

    def open(self, uri: str, language_id: str, text: str) -> None:
        document = Document(uri, language_id, text)
        self.documents[uri] = document
        if self.settings.extra_context_tokens:
            self.ring.remember(document, 0, self._relative_path(document))
        if self.settings.language_enabled(language_id):
            self.engine.ready_client()  # start loading the model while the user reads

    def change(self, uri: str, edits: list[tuple[str, tuple | None, tuple | None]]) -> None:
        """Apply (text, start, end) edits in order; start/end None replaces the whole text."""
        document = self.documents.get(uri)
        if document is None:
            return
        self._cancel_prefetch(uri)
        accepted_at = self._accepted_suggestion(document, edits)
        now = time.monotonic()
        for text, start, end in edits:
            self._apply_and_record(document, text, start, end, now)
        self.debounce.keystroke(uri, time.monotonic())
        if self.settings.extra_context_tokens and edits and edits[-1][1] is not None:
            self.ring.remember(document, edits[-1][1][0], self._relative_path(document))
        if accepted_at is not None:
            self._start_prefetch(document, accepted_at)

    def _apply_and_record(self, document: Document, text: str, start: tuple | None, end: tuple | None,
                          now: float) -> None:
        """Apply one change and keep the lines it replaced, for the next-edit history."""
        if start is None or end is None:
            before = split_lines(document.text)
            document.apply_change(text, start, end, self.encoding)
            self.history.record(document.uri, 0, before, split_lines(document.text), now)
            return
        first = min(max(start[0], 0), document.line_count - 1)
        last = min(max(end[0], first), document.line_count - 1)
        removed = [document.line(n) for n in range(first, last + 1)]
        document.apply_change(text, start, end, self.encoding)
        added = [document.line(n) for n in range(first, first + len(split_lines(text)))]
        self.history.record(document.uri, first, removed, added, now)

    def close(self, uri: str) -> None:
        self._cancel_prefetch(uri)
        self.documents.pop(uri, None)
        self.history.forget(uri)
        self.cache.forget(uri)
        self.ring.forget(uri)
        self.debounce.forget(uri)

    # Pre-computing the continuation of an accepted suggestion -------------------------------

    def _accepted_suggestion(self, document: Document, edits: list) -> int | None:
        """Where the cursor lands if this change inserts a suggestion we just showed, else None."""
        if len(edits) != 1:
            return None
        text, start, end = edits[0]
        if start is None or start != end or len(text) < 2:
            return None
        at = document.offset_at(*start, self.encoding)
        shown = self.cache.get(document.uri, document.text[:at], document.text[at:], self._answer_key())
        return at + len(text) if shown and text in shown else None

    def _start_prefetch(self, document: Document, offset: int) -> None:
        before, after = document.text[:offset], document.text[offset:]
        task = asyncio.ensure_future(self._prefetch(document, before, after))
        self._prefetches[document.uri] = Prefetch(before, after, task)

    def _cancel_prefetch(self, uri: str) -> None:
        pending = self._prefetches.pop(uri, None)
        if pending is not None:
            pending.task.cancel()

    async def _prefetch(self, document: Document, before: str, after: str) -> None:
        client = self.engine.ready_client()
        if client is None:
            return
        try:
            await self._from_engine(client, document, before, after, self._answer_key())
        except EngineError as error:
            log.info("prefetch failed: %s", error)

    async def _await_prefetch(self, uri: str, before: str, after: str) -> None:
        """Let a request for the very cursor being pre-computed wait for that work instead of repeating it."""
        pending = self._prefetches.get(uri)
        if pending is not None and not pending.task.done() and pending.before == before and pending.after == after:
            await asyncio.shield(pending.task)

    def _relative_path(self, document: Document) -> str:
        path = document.path
        if self.root and path.startswith(self.root.rstrip("/") + "/"):
            return os.path.relpath(path, self.root)
        return path

    def _answer_key(self) -> tuple:
        """Everything besides the text that shapes a suggestion: the settings that do, and the engine's identity."""
        client, health = self.engine.client, self.engine.health
        return (self.settings.answer_key(), client.base_url if client else None,
                health.get("model"), health.get("device"), health.get("dtype"), health.get("context_tokens"))

    def _request(self, document: Document, before: str, after: str, max_tokens: int,
                 one_line: bool) -> InfillRequest:
        settings = self.settings
        # The engine fits the context to its model; the windows only need to be big enough to fill it.
        context_tokens = _positive_int(self.engine.health.get("context_tokens"))
        extra = self.ring.render(document.uri, window_chars(settings.extra_context_tokens, context_tokens))
        context = build_context(
            before, after, path=self._relative_path(document), language_id=document.language_id,
            prefix_chars=window_chars(settings.prefix_tokens, context_tokens),
            suffix_chars=window_chars(settings.suffix_tokens, context_tokens), extra=extra,
        )
        return InfillRequest(
            prefix=context.prefix, suffix=context.suffix, header=context.header,
            extra_context=context.extra_context, max_tokens=max_tokens, steps=settings.steps,
            threshold=settings.threshold, n=settings.candidates, single_line=one_line,
        )

    # Completion ------------------------------------------------------------------------------

    async def suggest(self, uri: str, line: int, character: int, trigger: TriggerKind) -> Suggestions:
        """Suggestions at a cursor; a newer request for the same document makes this one return nothing."""
        document = self.documents.get(uri)
        if document is None or not self.settings.language_enabled(document.language_id):
            return NOTHING
        turn = self.latest.begin(uri)
        try:
            return await self._suggest(document, line, character, trigger)
        except asyncio.CancelledError:
            if turn.superseded:
                return NOTHING
            raise
        finally:
            self.latest.end(uri, turn)

    async def _suggest(self, document: Document, line: int, character: int, trigger: TriggerKind) -> Suggestions:
        started = time.perf_counter()
        offset = document.offset_at(line, character, self.encoding)
        before, after = document.text[:offset], document.text[offset:]
        if not wanted(self.settings, trigger, before, document.language_id):
            return NOTHING
        key = self._answer_key()
        await self._await_prefetch(document.uri, before, after)
        cached = self.cache.get(document.uri, before, after, key)
        if cached is not None:
            return self._report(Suggestions(cached, "cache", None, _ms_since(started)))
        if self.engine.ready_client() is None:
            return NOTHING
        if trigger == "automatic":
            inside_word = bool(before) and (before[-1].isalnum() or before[-1] == "_")
            await asyncio.sleep(self.debounce.delay(document.uri, inside_word))
        client = self.engine.ready_client()
        if client is None:
            return NOTHING
        started = time.perf_counter()
        try:
            texts, result = await self._from_engine(client, document, before, after, key)
        except EngineError as error:
            self.engine.engine_failed(error)
            log.warning("%s", error)
            return self._report(Suggestions((), "none", None, _ms_since(started), error))
        return self._report(Suggestions(texts, "engine", result, _ms_since(started)))

    async def _from_engine(self, client: EngineClient, document: Document, before: str, after: str,
                           key: tuple) -> tuple[tuple[str, ...], InfillResult]:
        """Ask the engine at a cursor, filter its texts and cache them under `key`."""
        settings = self.settings
        view = CursorView.around(before, after)
        one_line = single_line(view, settings.max_lines)
        max_tokens = min(settings.max_tokens, SINGLE_LINE_TOKENS) if one_line else settings.max_tokens
        result = await client.infill(self._request(document, before, after, max_tokens, one_line),
                                     document=document.uri)
        shown = (suggestion(c, view, settings.min_confidence, settings.max_lines) for c in result.completions)
        texts = tuple(dict.fromkeys(text for text in shown if text))
        self.cache.put(document.uri, CachedCompletion(before, after, key, texts))
        return texts, result

    def _report(self, suggestions: Suggestions) -> Suggestions:
        self._on_result(suggestions)
        return suggestions

    # Fill ------------------------------------------------------------------------------------

    async def fill(self, uri: str, start: tuple[int, int], end: tuple[int, int],
                   wait_s: float = 30.0) -> tuple[str, tuple[int, int], tuple[int, int]] | None:
        """Regenerate the text between two positions from both sides; None if there is no document.

        Returns the new text and the (normalised) positions it replaces. An explicit request,
        so it waits for a loading engine up to `wait_s`.
        """
        document = self.documents.get(uri)
        if document is None:
            return None
        first = document.offset_at(*start, self.encoding)
        last = max(first, document.offset_at(*end, self.encoding))
        client = await self.engine.wait_ready(wait_s)
        if client is None:
            raise EngineError(self.engine.message or "The engine is not ready.")
        before, selected, after = document.text[:first], document.text[first:last], document.text[last:]
        budget = min(FILL_MAX_TOKENS, max(self.settings.max_tokens, FILL_GROWTH * estimate_tokens(selected)))
        request = self._request(document, before, after, budget, one_line="\n" not in selected)
        try:
            result = await client.infill(request, document=uri)
        except EngineError as error:
            self.engine.engine_failed(error)
            raise
        view = CursorView.around(before, after)
        text = normalize_indentation(clean_text(result.texts[0] if result.texts else "", view), view)
        self._on_result(Suggestions((text,), "engine", result, result.round_trip_ms))
        return text, document.position_at(first, self.encoding), document.position_at(last, self.encoding)


@dataclass(frozen=True)
class NextEdit:
    """Replace the text between two positions of a document version by `text`."""

    start: tuple[int, int]
    end: tuple[int, int]
    text: str


def region_lines(document: Document, line: int, window: int) -> tuple[int, int]:
    """Character range of whole lines `window` above and below `line`."""
    first = max(0, line - window)
    start = document.offset_at(first, 0, "utf-16")
    excerpt = document.excerpt(first, 2 * window + 1)
    return start, start + len(excerpt)


def changed_span(old: str, new: str) -> tuple[int, int, str] | None:
    """The one replacement that turns `old` into `new`: [start, end) of `old` and the new text; None if equal."""
    if old == new:
        return None
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return head, len(old) - tail, new[head : len(new) - tail]


async def next_edit(completer: Completer, uri: str, line: int, character: int) -> NextEdit | None:
    """The edit the engine proposes next, near the cursor and after the document's recent edits; None when
    next edits are off, nothing was edited yet, or the engine proposes nothing."""
    settings = completer.settings
    document = completer.documents.get(uri)
    if not settings.next_edit or document is None or not settings.language_enabled(document.language_id):
        return None
    history = completer.history.unified(uri, completer._relative_path(document), time.monotonic())
    client = completer.engine.ready_client()
    if not history or client is None:
        return None
    cursor = document.offset_at(line, character, completer.encoding)
    start, end = region_lines(document, line, settings.next_edit_window_lines)
    text = document.text
    prompt = EditPrompt(completer._relative_path(document), text, (start, end), cursor, history)
    sent = text[start:end] if text[start:end].endswith("\n") or end == start else text[start:end] + "\n"
    try:
        rewritten = await client.next_edit(build_edit_prompt(prompt), settings.next_edit_min_confidence)
    except EngineError as error:
        completer.engine.engine_failed(error)
        log.warning("%s", error)
        return None
    if document.text is not text:  # typed on meanwhile: the answer is about text that is gone
        return None
    change = changed_span(sent, rewritten)
    if change is None or change[0] > end - start:
        return None
    first, last, new = change
    last = min(last, end - start)
    return NextEdit(document.position_at(start + first, completer.encoding),
                    document.position_at(start + last, completer.encoding), new)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
