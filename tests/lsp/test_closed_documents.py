"""A closed document is gone: nothing the language server keeps per document (text, cached suggestions, extra
context chunks, typing rhythm, turns) outlives its didClose."""

from __future__ import annotations

import gc
import weakref

from mercury_lsp.completer import Completer
from mercury_lsp.lifecycle import EngineLink
from mercury_lsp.settings import parse_settings

DOCUMENTS = 300


async def test_opening_and_closing_many_documents_keeps_nothing_of_them() -> None:
    # No engine (disabled): the test is about what the completer holds, and every path below runs without one.
    settings, problems = parse_settings({"enabled": False, "extraContextTokens": 512})
    assert problems == []
    completer = Completer(EngineLink(settings, lambda state, message: None), lambda suggestions: None)
    alive = []
    for n in range(DOCUMENTS):
        uri = f"file:///work/module_{n}.py"
        completer.open(uri, "python", f"def f{n}():\n    return {n}\n" * 200)
        for column in range(3):  # typing: the ring, the debounce and the edit history see the document
            completer.change(uri, [("x", (1, 11 + column), (1, 11 + column))])
        await completer.suggest(uri, 1, 14, "invoked")
        alive.append(weakref.ref(completer.documents[uri]))
    assert len(completer.ring._chunks) > 0  # the extra-context ring did remember chunks of them
    for n in range(DOCUMENTS):
        completer.close(f"file:///work/module_{n}.py")
    gc.collect()
    assert completer.documents == {}
    assert [ref for ref in alive if ref() is not None] == []  # no cache, ring or task still refers to one
    assert len(completer.ring._chunks) == 0
    assert len(completer.cache._entries) == 0
    assert completer.debounce._interval == {} and completer.debounce._last_key == {}
    assert completer.latest._turns == {} and completer._prefetches == {}
