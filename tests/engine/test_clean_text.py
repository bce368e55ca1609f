"""What reaches the editor: clean text (no U+FFFD, no partial UTF-8, no control or bidi characters), confidence
spans that tile it, new-token counts within max_tokens, and a cursor inside a word joining the word after it."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.detokenize import is_clean, text_with_spans
from mercury_lsp.engine.healing import encode_prefix, encode_suffix, heal_prefix
from mercury_lsp.engine.infill import EngineSettings, InfillEngine

from checkpoints import make_tiny_checkpoint
from scripted import ScriptedModel

PIECES = list("abc xyz(=)\n\t") + ["🎉", "é", "e\u0301", "中文", "ß", "\u200d", "👩\u200d💻", "\u202e", "\x07"]
AROUND = st.lists(st.sampled_from(PIECES), max_size=16).map("".join)


def assert_clean(text: str, spans) -> None:
    assert all(is_clean(c) for c in text), repr(text)
    assert "\ufffd" not in text
    at = 0
    for span in spans:
        assert span.start == at and span.end > span.start and 0.0 <= span.confidence <= 1.0
        at = span.end
    assert at == len(text)


@given(st.lists(st.tuples(st.binary(max_size=6), st.floats(0, 1)), max_size=12))
def test_any_token_bytes_decode_to_clean_text_with_tiling_spans(pieces):
    text, spans = text_with_spans(pieces)
    assert_clean(text, spans)
    # Whatever decoded cleanly is kept: the text is the valid characters of the bytes, in order.
    joined = b"".join(p for p, _ in pieces).decode("utf-8", errors="ignore")
    assert text == "".join(c for c in joined if is_clean(c))


def test_a_token_that_ends_inside_a_character_gives_its_confidence_to_the_one_that_completes_it():
    text, spans = text_with_spans([(b"x", 0.9), ("🎉".encode()[:2], 0.3), ("🎉".encode()[2:], 0.8), (b"!", 0.7)])
    assert text == "x🎉!"
    assert [(s.start, s.end, s.confidence) for s in spans] == [(0, 1, 0.9), (1, 2, 0.3), (2, 3, 0.7)]


@pytest.fixture(scope="module")
def random_engine(tmp_path_factory):
    # A random model writes arbitrary tokens, byte tokens cut inside characters among them.
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("clean") / "model", seed=3)
    return InfillEngine(load_checkpoint(folder, device="cpu"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=AROUND, after=AROUND, seed=st.integers(0, 50), single_line=st.booleans())
def test_completions_around_emoji_cjk_and_combining_text_are_clean(random_engine, before, after, seed, single_line):
    request = InfillRequest(prefix="x = 1\n" + before, suffix=after, max_tokens=12, seed=seed, n=2,
                            temperature=1.0, single_line=single_line)
    result = random_engine.infill(request)
    for completion in result.completions:
        assert_clean(completion.text, completion.spans)
        assert completion.tokens <= request.max_tokens
        if single_line:
            assert "\n" not in completion.text


# The prefix-healing cases of test_sampler, mirrored: the cursor inside a word, the suffix holding its rest.
WORD_CASES = [("def f(x):\n    pri", "nt(x)\n"), ("    retu", "rn a + b\n"), ("self.val", "ues = 1\n"),
              ("foo_b", "ar = 2\n"), ("x = tot", "al\n")]


@pytest.mark.parametrize(("prefix", "suffix"), WORD_CASES)
def test_a_cursor_inside_a_word_holds_the_words_rest_back_and_the_text_joins_it(vocab_and_engine, prefix, suffix):
    vocab, make_engine = vocab_and_engine
    suffix_ids, held = encode_suffix(vocab, suffix, prefix)
    word_rest = suffix[: len(held.decode())]
    assert held and suffix.encode().startswith(held)
    assert vocab.token_bytes_of(suffix_ids) == suffix.encode()[len(held) :]
    # The model knows the word: it writes "X" then the word's rest, as the natural tokenization has it.
    engine = make_engine(prefix, "X" + word_rest, suffix_ids)
    result = engine.infill(InfillRequest(prefix=prefix, suffix=suffix, max_tokens=12, steps=12))
    assert result.text == "X"  # the rest of the word is in the buffer already


@pytest.fixture(scope="module")
def vocab_and_engine():
    import torch

    from mercury_lsp.engine.checkpoint import LoadedModel, load_vocabulary
    from mercury_lsp.models import BUNDLED_MODEL

    vocab = load_vocabulary(BUNDLED_MODEL, json.loads((BUNDLED_MODEL / "config.json").read_text()))

    def make_engine(prefix: str, middle: str, suffix_ids: list[int]) -> InfillEngine:
        healed = heal_prefix(vocab, *encode_prefix(vocab, prefix))
        truth = vocab.encode(healed.heal.decode() + middle)
        start = len(healed.ids)
        script = {start + i: [(t, 0.97)] for i, t in enumerate(truth)}
        model = ScriptedModel(vocab.size, script, default=[(vocab.eos_id, 0.99)], max_positions=256)
        loaded = LoadedModel(model, vocab, "scripted", "scripted", torch.device("cpu"), torch.float32)
        return InfillEngine(loaded, EngineSettings(max_batch=2))

    return vocab, make_engine


def test_header_and_extra_context_survive_trimming_on_a_short_model(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "short")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 1024}))
    engine = InfillEngine(load_checkpoint(folder, device="cpu"))
    code = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(400))
    header, extra = "# src/app/module.py\n", "# other.py\ndef helper():\n    return 42\n"
    request = InfillRequest(prefix=code, suffix=code, header=header, extra_context=extra, max_tokens=64)
    jobs = engine.start(request)
    fed = jobs[0].prefix_ids
    header_ids, extra_ids = engine.vocab.encode(header), engine.vocab.encode(extra)
    assert fed[: len(extra_ids)] == extra_ids
    assert fed[len(extra_ids) : len(extra_ids) + len(header_ids)] == header_ids
    assert len(fed) + len(jobs[0].suffix_ids) + 65 <= 1024  # the code body was trimmed to the positions
    result = engine.result(jobs, 0.0)
    engine.release(jobs)
    assert (result.header_tokens, result.extra_tokens) == (len(header_ids), len(extra_ids))
    assert result.prefix_tokens > 256 and result.suffix_tokens > 0
