"""The sampler and infill engine driven by a scripted model whose predictions are fixed in advance."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from mercury_lsp.engine.checkpoint import LoadedModel, load_vocabulary
from mercury_lsp.engine.healing import encode_prefix, heal_prefix
from mercury_lsp.engine.infill import InfillEngine, InfillRequest
from mercury_lsp.engine.sampler import (
    DONE,
    HOST_WORK,
    RUNNING,
    CanvasSlots,
    CanvasSpec,
    VocabTables,
    denoise,
    expand_and_delete,
    filler_tail,
    measure_confidence,
    reset_slot,
    slot_completion,
)
from mercury_lsp.engine.vocab import Vocabulary
from mercury_lsp.models import BUNDLED_MODEL

from checkpoints import make_tokenizer
from scripted import ScriptedModel


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    tokenizer = make_tokenizer(expand=True)
    ids = tokenizer.get_vocab()
    return Vocabulary(
        tokenizer=tokenizer,
        mask_id=ids["<|mask|>"],
        eos_id=ids["<|endoftext|>"],
        pad_id=ids["<|pad|>"],
        special_ids=frozenset(ids[t] for t in ("<|mask|>", "<|endoftext|>", "<|pad|>", "<|expand|>", "<|delete|>")),
    )


def scripted_engine(vocab, prefix, middle, *, content_p=0.6, filler_p=0.99, shifted=False, overrides=None):
    """An engine whose model knows the infill: `middle` after the healed prefix, then end-of-text everywhere."""
    healed = heal_prefix(vocab, *encode_prefix(vocab, prefix))
    truth = vocab.encode(healed.heal.decode() + middle)
    start = len(healed.ids)
    script = {start + i: [(t, content_p)] for i, t in enumerate(truth)}
    script.update(overrides(start, truth) if overrides else {})
    model = ScriptedModel(vocab.size, script, default=[(vocab.eos_id, filler_p)], shifted=shifted)
    loaded = LoadedModel(model, vocab, "scripted", "scripted", torch.device("cpu"), torch.float32)
    return InfillEngine(loaded), healed, truth


@pytest.mark.parametrize("shifted", [False, True])
def test_recovers_the_known_infill_despite_confident_filler(vocab, shifted):
    engine, _, _ = scripted_engine(vocab, "def add(a, b):\n    retur", "n a + b", shifted=shifted)
    result = engine.infill(InfillRequest(prefix="def add(a, b):\n    retur", suffix="\n", max_tokens=24, steps=24))
    assert result.text == "n a + b"


def test_filler_inside_the_content_is_not_committed(vocab):
    # At the second content position the model's favourite is end-of-text (0.95); a sampler that committed it
    # would cut the infill short. Ours only commits filler as a run from the right edge.
    def overrides(start, truth):
        return {start + 1: [(vocab.eos_id, 0.95), (truth[1], 0.04)]}

    engine, _, _ = scripted_engine(vocab, "x = ", "total + 1", overrides=overrides)
    result = engine.infill(InfillRequest(prefix="x = ", max_tokens=16, steps=16))
    assert result.text == "total + 1"


def test_filler_never_floods_a_confident_canvas(vocab):
    # Filler is the most confident prediction everywhere past the content, far above the content's own.
    engine, _, truth = scripted_engine(vocab, "for item in ", "items:", content_p=0.3, filler_p=0.999)
    result = engine.infill(InfillRequest(prefix="for item in ", max_tokens=32, steps=8))
    assert result.text == "items:"


@pytest.mark.parametrize("filler_threshold, most_steps", [(0.7, 1), (None, 32)])
def test_a_short_answer_in_a_wide_canvas_ends_in_few_steps(vocab, filler_threshold, most_steps):
    # The model is sure of the answer and of filler far from it, less so next to it (as trained models are). At
    # the token threshold the filler run grows a position or two per step; at a filler threshold of 0.7 it
    # closes at once. The answer is the same.
    def overrides(start, truth):
        after = start + len(truth)
        return {after + k: [(vocab.eos_id, 0.75 + 0.24 * k / 32)] for k in range(32)}

    engine, _, _ = scripted_engine(vocab, "x = ", "total + 1", content_p=0.95, overrides=overrides)
    engine.settings.filler_threshold = filler_threshold
    engine.settings.tail_threshold = None  # the run from the right edge alone (length first is tested below)
    result = engine.infill(InfillRequest(prefix="x = ", max_tokens=32))
    assert result.text == "total + 1"
    assert result.steps <= most_steps
    if filler_threshold is None:
        assert result.steps >= 8


@pytest.mark.parametrize("shifted", [False, True])
def test_length_first_commits_the_filler_tail_in_the_first_step(vocab, shifted):
    # The answer's tokens are below the threshold (0.6 < 0.9); filler is doubtful next to the answer (0.6, under
    # the filler run's 0.7) and near certain far from it. The length distribution commits the far end at once,
    # and the steps go to the answer and the few positions beside it.
    def overrides(start, truth):
        after = start + len(truth)
        return {after + k: [(vocab.eos_id, 0.6 + 0.39 * k / 32)] for k in range(32)}

    engine, _, truth = scripted_engine(vocab, "x = ", "total + 1", content_p=0.6, shifted=shifted,
                                       overrides=overrides)
    engine.settings.tail_threshold = 0.7
    request = InfillRequest(prefix="x = ", max_tokens=32)
    jobs = engine.start(request)
    committed_filler = engine.canvases.committed_filler[jobs[0].slot, : jobs[0].length]
    assert committed_filler[len(truth) + 3 :].all() and not committed_filler[: len(truth)].any()
    while not jobs[0].done:
        engine.step(jobs)
    result = engine.result(jobs, 0.0)
    engine.release(jobs)
    assert result.text == "total + 1"
    assert result.steps <= len(truth) + 3

    engine.settings.tail_threshold = None  # the rule before: the filler run grows from the edge, spending steps
    before = engine.infill(request)
    assert before.text == "total + 1" and before.steps >= 2 * result.steps


def _canvas_logits(filler_p: list[float], vocab_size: int = 8, filler_id: int = 0) -> torch.Tensor:
    """Logits [1, C, V] whose filler probability at each position is given; the rest goes to token 5."""
    rows = []
    for p in filler_p:
        row = torch.full((vocab_size,), -30.0)
        row[filler_id], row[5] = math.log(p), math.log(1 - p)
        rows.append(row)
    return torch.stack(rows)[None]


def _tail(filler_p, masked=None, filler=None, threshold=0.7):
    width = len(filler_p)
    masked = torch.ones(1, width, dtype=torch.bool) if masked is None else torch.tensor([masked])
    filler = torch.zeros(1, width, dtype=torch.bool) if filler is None else torch.tensor([filler])
    tail = filler_tail(_canvas_logits(filler_p), torch.tensor([0]), masked, filler, torch.tensor([threshold]))
    return tail[0].tolist()


def test_filler_tail_follows_the_length_distribution():
    sure_end = [0.01, 0.01, 0.02, 0.9, 0.99, 0.99]
    assert _tail(sure_end) == [False, False, False, True, True, True]
    # A model that sees content everywhere commits no filler; an off switch (threshold above 1) commits none.
    assert not any(_tail([0.05] * 6))
    assert not any(_tail(sure_end, threshold=2.0))
    # Coin flips everywhere: the length is uniform, so only the end that most lengths agree on is filler.
    assert _tail([0.5] * 9) == [False] * 6 + [True] * 3


def test_filler_tail_respects_committed_positions():
    sure_end = [0.01, 0.01, 0.02, 0.9, 0.99, 0.99]
    # Content committed near the end: the answer reaches it, nothing before it can be filler.
    content_late = _tail(sure_end, masked=[True] * 5 + [False], filler=[False] * 6)
    assert not any(content_late)
    # Filler committed at the end already: the positions it covers are not committed twice.
    assert _tail(sure_end, masked=[True] * 4 + [False] * 2, filler=[False] * 4 + [True] * 2) == [False] * 3 + [True] + [False] * 2


def test_single_line_stops_at_the_first_newline(vocab):
    engine, _, _ = scripted_engine(vocab, "    x", " = a\n    y = b\n    return y")
    result = engine.infill(InfillRequest(prefix="    x", max_tokens=24, single_line=True))
    assert result.text == " = a"


def test_token_healing_constrains_the_first_token_and_drops_the_typed_bytes(vocab):
    prefix = "def add(a, b):\n    retur"
    forbidden = vocab.encode("x")[0]

    def overrides(start, truth):
        # The model would rather start with "x", which does not begin with the typed characters.
        return {start: [(forbidden, 0.97), (truth[0], 0.02)]}

    engine, healed, truth = scripted_engine(vocab, prefix, "n a + b", overrides=overrides)
    assert healed.heal and b"retur".endswith(healed.heal.lstrip()) or healed.heal.endswith(b"r")
    result = engine.infill(InfillRequest(prefix=prefix, suffix="\n", max_tokens=16))
    assert result.text == "n a + b"


@pytest.mark.parametrize(
    "prefix",
    ["def f():\n", 'print("hel', "", "x = [1, 2,", "    return tot", "def f():\n    ", "x = 1\n\n", "if a:\n        "],
    ids=["after-bare-newline", "inside-string", "buffer-start", "after-comma", "mid-word", "after-indentation",
         "after-blank-line", "after-deeper-indentation"],
)
def test_healing_cases_return_only_text_after_the_cursor(vocab, prefix):
    engine, healed, truth = scripted_engine(vocab, prefix, "abc")
    if prefix:
        assert healed.heal and prefix.encode().endswith(healed.heal)
        assert all(vocab.token_bytes[int(i)].startswith(healed.heal) for i in healed.first_allowed)
    else:
        assert healed.heal == b"" and healed.first_allowed is None
    result = engine.infill(InfillRequest(prefix=prefix, suffix="", max_tokens=12))
    assert result.text == "abc"


def test_healing_never_splits_a_utf8_character(vocab):
    ids = vocab.encode("s = 'héé")
    healed = heal_prefix(vocab, ids)
    vocab.token_bytes_of(healed.ids).decode("utf-8")  # the kept prefix is whole characters
    assert "s = 'héé".encode().endswith(healed.heal)


def test_draft_and_refine_remasks_weak_tokens_and_repredicts_them(vocab):
    engine, _, truth = scripted_engine(vocab, "y = ", "a + b", content_p=0.3)
    plain = engine.infill(InfillRequest(prefix="y = ", max_tokens=8, steps=2))
    refined = engine.infill(InfillRequest(prefix="y = ", max_tokens=8, steps=2, refine=True))
    assert plain.text == refined.text == "a + b"
    assert refined.steps > plain.steps  # the refinement steps ran


def _slots(vocab, length, mode="expand", max_length=8, steps=8):
    """One canvas of masks in slot 0 of a fresh slot table (slot 1 is scratch)."""
    tables = VocabTables(vocab, vocab.size, torch.device("cpu"))
    slots = CanvasSlots.allocate(2, 8, vocab.size, torch.device("cpu"))
    spec = CanvasSpec(length, max_length, mode, 0.9, steps, False, b"", None, False)
    reset_slot(slots, tables, vocab, 0, spec)
    return slots, tables, spec


def _logits_for(vocab, picks: list[int], width: int) -> torch.Tensor:
    logits = torch.full((1, width, vocab.size), -10.0)
    for j, token in enumerate(picks):
        logits[0, j, token] = 10.0
    return logits


ROW = torch.tensor([0])


def test_expand_turns_one_mask_into_two_and_eos_deletes(vocab):
    expand_vocab = dataclasses.replace(vocab, expand_id=vocab.tokenizer.token_to_id("<|expand|>"),
                                       delete_id=vocab.tokenizer.token_to_id("<|delete|>"))
    a, b = vocab.encode("a")[0], vocab.encode("b")[0]
    m = vocab.mask_id
    slots, tables, spec = _slots(expand_vocab, 3)
    status = denoise(slots, tables, ROW, _logits_for(vocab, [a, expand_vocab.expand_id, vocab.eos_id], 3))
    assert status.tolist() == [HOST_WORK]  # the length changes: the host rebuilds the canvas
    length, expansions_left = expand_and_delete(slots, tables, 0, expansions_left=8 - 3, max_length=8)
    # a stays, expand became two masks, end-of-text deleted its position.
    assert slots.ids[0, :length].tolist() == [a, m, m] and slots.masked[0, :length].tolist() == [False, True, True]
    assert expansions_left == 8 - 3 - 1
    status = denoise(slots, tables, ROW, _logits_for(vocab, [a, b, b], 3))
    assert status.tolist() == [DONE]
    assert slot_completion(expand_vocab, slots, 0, spec).text == "abb"


def test_expand_stops_at_the_length_budget(vocab):
    expand_vocab = dataclasses.replace(vocab, expand_id=vocab.tokenizer.token_to_id("<|expand|>"))
    slots, tables, _ = _slots(expand_vocab, 8)
    logits = _logits_for(vocab, [expand_vocab.expand_id] * 8, 8)
    logits[0, :, vocab.encode("a")[0]] = 5.0  # the runner-up everywhere
    denoise(slots, tables, ROW, logits)
    assert int(slots.length[0]) == 8  # already at max_length: expand was not allowed
    assert expand_vocab.expand_id not in slots.ids[0].tolist()


def test_commits_at_least_enough_per_step_to_meet_the_budget(vocab):
    slots, tables, _ = _slots(vocab, 8, mode="filler", steps=2)
    logits = torch.zeros(1, 8, vocab.size)
    logits[0, :, vocab.encode("a")[0]] = 1.0  # content is favoured, but nothing is confident
    assert denoise(slots, tables, ROW, logits).tolist() == [RUNNING]
    assert int((~slots.masked[0]).sum()) == 4
    assert denoise(slots, tables, ROW, logits).tolist() == [DONE]


def test_a_fixed_seed_gives_identical_output(tiny_checkpoint):
    from mercury_lsp.engine.checkpoint import load_checkpoint

    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"))
    request = dict(prefix="def total(items):\n    ", suffix="\n", max_tokens=12, temperature=0.8)
    first = engine.infill(InfillRequest(seed=7, **request))
    again = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu")).infill(InfillRequest(seed=7, **request))
    others = {engine.infill(InfillRequest(seed=s, **request)).text for s in range(1, 6)}
    assert first.text == again.text
    assert len(others | {first.text}) > 1  # the seed really drives the sampling


def test_n_candidates_run_in_one_batch(tiny_checkpoint):
    from mercury_lsp.engine.checkpoint import load_checkpoint

    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"))
    single = engine.infill(InfillRequest(prefix="x = ", max_tokens=8))
    several = engine.infill(InfillRequest(prefix="x = ", max_tokens=8, n=4))
    assert several.text == single.text  # candidate 0 is the greedy one
    assert 1 <= len(several.candidates) <= 4 and several.candidates[0] == single.text


@pytest.fixture(scope="module")
def bundled_vocab() -> Vocabulary:
    """The bundled model's vocabulary, read as the engine reads it."""
    return load_vocabulary(BUNDLED_MODEL, json.loads((BUNDLED_MODEL / "config.json").read_text()))


@pytest.mark.parametrize("which", ["test", "bundled"])
@pytest.mark.parametrize(
    "prefix",
    ["def f():\n    ", "x = 1\n\n", "if a:\n        ", "x =  ", "\tif a:\n\t\t", "y = 2\n\n    ", "    return "],
)
@pytest.mark.parametrize("typed", ["return a", "(b)", "# note", "_x = 1"])
def test_the_encoded_prefix_is_how_the_text_tokenizes_once_more_is_typed(vocab, bundled_vocab, which, prefix, typed):
    """The kept tokens begin the tokenization of prefix + what comes next, and the next token starts with the held
    bytes, so the canvas can produce the natural tokens (a whole-run token like `\n    ` would forbid them)."""
    if which == "bundled":
        vocab = bundled_vocab
    kept, held = encode_prefix(vocab, prefix)
    healed = heal_prefix(vocab, kept, held)
    natural = vocab.encode(prefix + typed)
    assert natural[: len(healed.ids)] == healed.ids
    assert vocab.token_bytes[natural[len(healed.ids)]].startswith(healed.heal)
    assert vocab.token_bytes_of(healed.ids) + healed.heal == prefix.encode()


def test_after_indentation_the_bundled_tokenizer_holds_back_one_space(bundled_vocab):
    kept, held = encode_prefix(bundled_vocab, "def f():\n    ")
    assert held == b" " and bundled_vocab.token_bytes_of(kept) == b"def f():\n   "


def test_confidence_measures_on_a_known_distribution():
    probs = torch.tensor([[0.6, 0.3, 0.1, 0.0], [0.25, 0.25, 0.25, 0.25]])
    logits = probs.clamp_min(1e-9).log()
    filler = torch.tensor([0])
    p, ids, p_nf, ids_nf = measure_confidence(logits, filler, "probability")
    assert ids.tolist() == [0, 0] and ids_nf.tolist() == [1, 1]
    torch.testing.assert_close(p, torch.tensor([0.6, 0.25]))
    margin, _, margin_nf, _ = measure_confidence(logits, filler, "margin")
    torch.testing.assert_close(margin, torch.tensor([0.3, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(margin_nf, torch.tensor([0.2, 0.0]), atol=1e-6, rtol=0)
    certainty, _, _, _ = measure_confidence(logits, filler, "entropy")
    assert certainty[0] > certainty[1] and abs(float(certainty[1]) - 0.25) < 1e-4  # exp(-log 4) for a flat row


def test_an_engine_takes_a_confidence_measure_by_name(tiny_checkpoint):
    from mercury_lsp.engine.checkpoint import load_checkpoint
    from mercury_lsp.engine.errors import InfillError
    from mercury_lsp.engine.infill import EngineSettings

    loaded = load_checkpoint(tiny_checkpoint, device="cpu")
    for measure in ("margin", "entropy"):
        result = InfillEngine(loaded, EngineSettings(confidence=measure)).infill(InfillRequest(prefix="x = ", max_tokens=8))
        assert result.steps >= 1 and all(0 <= s.confidence <= 1 for s in result.completions[0].spans)
    with pytest.raises(InfillError, match="confidence measure"):
        InfillEngine(loaded, EngineSettings(confidence="vibes"))
