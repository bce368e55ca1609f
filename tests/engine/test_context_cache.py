"""Context keys/values: exact reuse of prefix chunks across requests, and cached canvas steps vs recomputation."""

from __future__ import annotations

import copy

import pytest
import torch

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import EngineSettings, InfillEngine, InfillRequest
from mercury_lsp.engine.sampler import canvas_completion, denoise_step

SOURCE = "".join(f"def f{i}(x):\n    return x * {i} + total\n\n" for i in range(12))


def engine_for(checkpoint, **settings) -> InfillEngine:
    return InfillEngine(load_checkpoint(checkpoint, device="cpu"), EngineSettings(chunk_size=16, **settings))


def test_typing_one_more_character_reuses_the_prefix_exactly(tiny_checkpoint):
    warm = engine_for(tiny_checkpoint)
    warm.infill(InfillRequest(prefix=SOURCE + "def g(", suffix="\n", max_tokens=8))
    computed_before = warm.prefix_cache.tokens_computed
    after_typing = InfillRequest(prefix=SOURCE + "def g(a", suffix="\n", max_tokens=8)
    reused = warm.infill(after_typing)
    assert warm.prefix_cache.tokens_reused >= len(warm.vocab.encode(SOURCE)) - 32
    assert warm.prefix_cache.tokens_computed - computed_before <= 16  # at most one chunk recomputed
    cold = engine_for(tiny_checkpoint).infill(after_typing)
    assert reused.text == cold.text


def _started_job(engine: InfillEngine):
    jobs = engine.start(InfillRequest(prefix=SOURCE + "    return ", suffix="\n\nprint(1)\n", max_tokens=12))
    return jobs[0]


def test_cached_step_equals_full_recompute_right_after_a_refresh(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint)
    job = _started_job(engine)
    for _ in range(3):  # several steps, each compared on the same canvas
        full = engine._group_forward(job)  # recomputes tail + canvas + suffix and refreshes the context
        cached = engine._canvas_logits([job])[0, : job.canvas.length]
        assert torch.allclose(cached, full, atol=1e-4), (cached - full).abs().max()
        engine.step([job])
        if job.done:
            break


def test_stale_context_predictions_mostly_agree_with_recomputation(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint)
    job = _started_job(engine)
    agree = total = 0
    for _ in range(4):
        if job.done:
            break
        cached = engine._canvas_logits([job])[0, : job.canvas.length].argmax(-1)
        full = engine._group_forward(copy.copy(job)).argmax(-1)
        agree += int((cached == full).sum())
        total += job.canvas.length
        engine.step([job])
    assert total and agree / total >= 0.8


def test_refresh_every_step_matches_a_hand_written_uncached_loop(tiny_checkpoint):
    request = InfillRequest(prefix=SOURCE + "x = ", suffix="\n", max_tokens=10, steps=10)
    every_step = engine_for(tiny_checkpoint, refresh_every=1).infill(request)

    engine = engine_for(tiny_checkpoint)
    job = engine.start(request)[0]
    while not job.done:  # every step recomputes tail, canvas and suffix: nothing cached but exact prefix chunks
        denoise_step(engine.vocab, [job.canvas], engine._group_forward(job)[None].float())
    assert canvas_completion(engine.vocab, job.canvas).text == every_step.text
    assert job.canvas.steps_done == every_step.steps


def test_context_fits_the_positions_the_model_was_trained_on(tmp_path):
    import json

    from mercury_lsp.engine.errors import InfillError

    from checkpoints import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path / "short")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 96}))
    engine = InfillEngine(load_checkpoint(folder, device="cpu"))
    result = engine.infill(InfillRequest(prefix=SOURCE * 4, suffix=SOURCE, max_tokens=16))
    assert result.prefix_tokens + result.suffix_tokens + 16 + 1 <= 96
    assert result.prefix_tokens > result.suffix_tokens > 0
    with pytest.raises(InfillError, match="no room for context"):
        engine.infill(InfillRequest(prefix="x", max_tokens=100))


def test_a_prefix_past_the_budget_is_cut_where_typing_does_not_move_the_cut(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint, max_prefix_tokens=96)
    long_prefix = SOURCE * 6 + "def g("
    engine.infill(InfillRequest(prefix=long_prefix, max_tokens=4))
    computed = engine.prefix_cache.tokens_computed
    for typed in ("a", "a,", "a, b"):
        result = engine.infill(InfillRequest(prefix=long_prefix + typed, max_tokens=4))
        assert result.prefix_tokens <= 96
    assert engine.prefix_cache.tokens_computed - computed <= 16  # the chunks before the cursor were reused
