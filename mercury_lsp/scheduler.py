"""When to ask the engine: adaptive debounce, one live request per document, a type-through cache."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field


class AdaptiveDebounce:
    """Delay before an automatic request: about one typing interval, between base and cap.

    A fast typist's next key usually comes within the delay, so no request is wasted on a
    prefix that is about to change; a slow typist pauses at every key and gets the base.
    """

    def __init__(self, base_ms: int, max_ms: int, smoothing: float = 0.3) -> None:
        self.base = base_ms / 1000
        self.cap = max(max_ms, base_ms) / 1000
        self._smoothing = smoothing
        self._interval: dict[str, float] = {}
        self._last_key: dict[str, float] = {}

    def keystroke(self, key: str, now: float) -> None:
        """Record an edit of document `key` at time `now` (seconds)."""
        last = self._last_key.get(key)
        self._last_key[key] = now
        if last is None:
            return
        gap = now - last
        previous = self._interval.get(key, gap)
        self._interval[key] = previous + self._smoothing * (gap - previous)

    def delay(self, key: str, inside_word: bool = True) -> float:
        """Seconds to wait before asking the engine for document `key`.

        Only a cursor inside a word waits for the typing interval: there the next key is what usually comes. After
        a word, a space or punctuation, or at a line start, typists pause and a suggestion is wanted now; should
        a key come anyway, the engine drops the superseded request at its next step."""
        interval = self._interval.get(key)
        if not inside_word or interval is None or interval >= self.cap:
            return self.base
        return min(self.cap, max(self.base, 1.2 * interval))

    def forget(self, key: str) -> None:
        self._interval.pop(key, None)
        self._last_key.pop(key, None)


@dataclass
class Turn:
    """One request's claim on its document; a newer request supersedes it."""

    task: asyncio.Task | None
    superseded: bool = False

    def supersede(self) -> None:
        self.superseded = True
        if self.task is not None:
            self.task.cancel()


@dataclass
class LatestOnly:
    """At most one live request per key: starting a turn cancels the older one."""

    _turns: dict[str, Turn] = field(default_factory=dict)

    def begin(self, key: str) -> Turn:
        """Claim `key` for the current task, superseding whoever held it."""
        older = self._turns.get(key)
        if older is not None:
            older.supersede()
        turn = Turn(asyncio.current_task())
        self._turns[key] = turn
        return turn

    def end(self, key: str, turn: Turn) -> None:
        if self._turns.get(key) is turn:
            del self._turns[key]


@dataclass(frozen=True)
class CachedCompletion:
    """A suggestion shown for the text around a cursor, with everything else that shaped it (its key)."""

    before: str
    after: str
    key: tuple
    texts: tuple[str, ...]


class CompletionCache:
    """LRU of recent suggestions; typing the start of one serves the rest without the engine."""

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int], CachedCompletion] = OrderedDict()

    def put(self, uri: str, entry: CachedCompletion) -> None:
        """Remember the suggestions `entry` for document `uri`."""
        slot = (uri, len(entry.before))
        self._entries[slot] = entry
        self._entries.move_to_end(slot)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, uri: str, before: str, after: str, key: tuple) -> tuple[str, ...] | None:
        """Suggestions for this cursor: an exact hit, or the rest of one the user is typing through."""
        for slot, entry in reversed(self._entries.items()):
            if slot[0] != uri or entry.key != key or len(entry.after) != len(after):
                continue
            typed_length = len(before) - len(entry.before)
            if typed_length < 0 or entry.after != after or not before.startswith(entry.before):
                continue
            typed = before[len(entry.before) :]
            rests = tuple(
                text[typed_length:] for text in entry.texts
                if text.startswith(typed) and text[typed_length:].strip()
            )
            if rests:
                self._entries.move_to_end(slot)
                return rests
        return None

    def forget(self, uri: str) -> None:
        for slot in [slot for slot in self._entries if slot[0] == uri]:
            del self._entries[slot]

    def clear(self) -> None:
        self._entries.clear()
