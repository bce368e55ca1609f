"""The OpenAI-style shape in isolation: what a stream may send before a stop string could still appear, and the
confidence spans that travel as legacy `logprobs` and come back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mercury_lsp.engine.api.completions import (
    apply_stop,
    logprobs_json,
    spans_from_logprobs,
    streamable_length,
)
from mercury_lsp.engine.api.infill import Span

texts = st.text(alphabet="ab\n ", max_size=40)


@settings(max_examples=300, deadline=None)
@given(text=texts, stops=st.lists(st.text(alphabet="ab\n ", min_size=1, max_size=4), max_size=3))
def test_a_growing_text_streams_exactly_what_the_whole_answer_keeps(text: str, stops: list[str]) -> None:
    final, _ = apply_stop(text, stops)
    sent = ""
    for end in range(len(text) + 1):  # the settled text grows one character at a time
        length, stopped = streamable_length(text[:end], stops)
        assert length >= len(sent), "nothing sent is taken back"
        sent = text[:end][:length]
        assert final.startswith(sent), (sent, final)
        if stopped:
            assert sent == final
            return
    assert len(sent) <= len(final)


def test_a_partial_stop_string_is_held_back_until_it_is_decided():
    assert streamable_length("x = 1\n", ["\n\n"]) == (5, False)
    assert streamable_length("x = 1\ny", ["\n\n"]) == (7, False)
    assert streamable_length("x = 1\n\ny", ["\n\n"]) == (5, True)
    assert streamable_length("abc", []) == (3, False)


@given(pieces=st.lists(st.tuples(st.text(min_size=1, max_size=5), st.floats(0.0, 1.0)), max_size=8))
def test_spans_survive_the_trip_through_logprobs(pieces) -> None:
    text, spans, at = "", [], 0
    for piece, confidence in pieces:
        spans.append(Span(at, at + len(piece), confidence))
        text += piece
        at += len(piece)
    back = spans_from_logprobs(logprobs_json(text, spans), text)
    assert [(s.start, s.end) for s in back] == [(s.start, s.end) for s in spans]
    assert all(abs(b.confidence - max(s.confidence, 1e-9)) <= 1e-4 * max(s.confidence, 1e-3) + 1e-9
               for b, s in zip(back, spans))


def test_logprobs_that_do_not_spell_the_text_are_ignored():
    assert spans_from_logprobs({"tokens": ["ab", "c"], "token_logprobs": [-0.1, -0.2]}, "abd") == ()
    assert spans_from_logprobs({"tokens": ["a"], "token_logprobs": [-0.1, -0.2]}, "a") == ()
    assert spans_from_logprobs(None, "a") == ()
    assert spans_from_logprobs({"tokens": ["a", ""], "token_logprobs": [0.5, -1.0]}, "a")[0].confidence == 1.0


def test_other_servers_get_the_header_and_extra_context_before_the_prefix():
    from mercury_lsp.engine.api.completions import completion_body
    from mercury_lsp.engine.api.infill import InfillRequest

    request = InfillRequest(prefix="x = ", suffix="\n", header="# app.py\n", extra_context="# util.py\ny = 1\n")
    for route in ("completions", "fim"):
        body = completion_body(request, route, "m")
        assert body["prompt"] == "# util.py\ny = 1\n# app.py\nx = " and body["suffix"] == "\n"
