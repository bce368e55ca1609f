"""Adaptive debounce, one live request per document, and the type-through cache."""

from __future__ import annotations

import asyncio

import pytest

from mercury_lsp.scheduler import AdaptiveDebounce, CachedCompletion, CompletionCache, LatestOnly


def test_debounce_waits_for_the_typing_interval_only_inside_a_word() -> None:
    debounce = AdaptiveDebounce(base_ms=75, max_ms=400)
    for step in range(10):
        debounce.keystroke("a", step * 0.2)  # 200 ms between keys
    assert debounce.delay("a") == pytest.approx(0.24, rel=0.05)
    assert debounce.delay("a", inside_word=False) == pytest.approx(0.075)  # after a word: ask now


def test_debounce_stretches_to_the_typing_interval_and_caps() -> None:
    debounce = AdaptiveDebounce(base_ms=75, max_ms=400)
    assert debounce.delay("a") == pytest.approx(0.075)
    for step in range(10):
        debounce.keystroke("a", step * 0.2)  # 200 ms between keys
    assert debounce.delay("a") == pytest.approx(0.24)
    for step in range(10):
        debounce.keystroke("b", step * 0.01)  # a burst: the base is the floor
    assert debounce.delay("b") == pytest.approx(0.075)
    for step in range(10):
        debounce.keystroke("c", step * 2.0)  # one key every two seconds: every key is a pause
    assert debounce.delay("c") == pytest.approx(0.075)
    debounce.keystroke("d", 0.0)
    debounce.keystroke("d", 0.35)
    assert debounce.delay("d") == pytest.approx(0.4)  # 1.2 x 350 ms, capped


async def test_latest_only_cancels_the_older_turn() -> None:
    latest = LatestOnly()
    outcomes: list[str] = []

    async def request(name: str) -> None:
        turn = latest.begin("doc")
        try:
            await asyncio.sleep(1)
            outcomes.append(f"{name} finished")
        except asyncio.CancelledError:
            outcomes.append(f"{name} superseded={turn.superseded}")
        finally:
            latest.end("doc", turn)

    first = asyncio.create_task(request("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(request("second"))
    await asyncio.sleep(0)
    second.cancel()  # a client cancel: not a supersession
    await asyncio.gather(first, second)
    assert outcomes == ["first superseded=True", "second superseded=False"]


def test_cache_exact_hit_and_type_through() -> None:
    cache = CompletionCache(capacity=2)
    options = (1, 2)
    cache.put("doc", CachedCompletion("def f(x):\n    ret", "\n", options, ("urn x * 2",)))
    assert cache.get("doc", "def f(x):\n    ret", "\n", options) == ("urn x * 2",)
    assert cache.get("doc", "def f(x):\n    retur", "\n", options) == ("n x * 2",)
    assert cache.get("doc", "def f(x):\n    return x * 2", "\n", options) is None  # all typed
    assert cache.get("doc", "def f(x):\n    retry", "\n", options) is None  # typed something else
    assert cache.get("doc", "def f(x):\n    retur", "\n\n", options) is None  # suffix changed
    assert cache.get("doc", "def f(x):\n    retur", "\n", (9,)) is None  # other options
    assert cache.get("other", "def f(x):\n    retur", "\n", options) is None


def test_cache_evicts_least_recent_and_forgets_closed_documents() -> None:
    cache = CompletionCache(capacity=2)
    for name in ("a", "b", "c"):
        cache.put("doc", CachedCompletion(name * 3, "", (), ("!",)))
    assert cache.get("doc", "aaa", "", ()) is None
    assert cache.get("doc", "ccc", "", ()) == ("!",)
    cache.forget("doc")
    assert cache.get("doc", "ccc", "", ()) is None
