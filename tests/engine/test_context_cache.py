"""Context keys/values: exact reuse of prefix chunks across requests, and cached canvas steps vs recomputation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import EngineSettings, InfillEngine, InfillRequest, Job
from mercury_lsp.engine.sampler import DONE, denoise

SOURCE = "".join(f"def f{i}(x):\n    return x * {i} + total\n\n" for i in range(12))


def engine_for(checkpoint, **settings) -> InfillEngine:
    return InfillEngine(load_checkpoint(checkpoint, device="cpu"), EngineSettings(chunk_size=16, **settings))


def test_typing_one_more_character_reuses_the_prefix_exactly(tiny_checkpoint):
    warm = engine_for(tiny_checkpoint)
    warm.infill(InfillRequest(prefix=SOURCE + "def g(", suffix="\n", max_tokens=8))
    computed_before = warm.prefix_cache.tokens_computed
    after_typing = InfillRequest(prefix=SOURCE + "def g(a", suffix="\n", max_tokens=8)
    reused = warm.infill(after_typing)
    cache = warm.prefix_cache
    assert cache.tokens_in_slot + cache.tokens_reused >= len(warm.vocab.encode(SOURCE)) - 32
    assert warm.prefix_cache.tokens_computed - computed_before <= 16  # at most one chunk recomputed
    cold = engine_for(tiny_checkpoint).infill(after_typing)
    assert reused.text == cold.text


def test_the_next_keystroke_reuses_what_its_slot_still_holds_without_the_chunk_cache(tiny_checkpoint):
    # A cache too small for one chunk: what typing reuses comes from the slot the last request left.
    engine = engine_for(tiny_checkpoint, context_cache_mb=0.001)
    cache = engine.prefix_cache
    engine.infill(InfillRequest(prefix=SOURCE + "def g(", suffix="\n", max_tokens=8))
    assert not cache.entries and engine.context.resident[0]
    computed = cache.tokens_computed
    typed = InfillRequest(prefix=SOURCE + "def g(a", suffix="\n", max_tokens=8)
    reused = engine.infill(typed)
    assert cache.tokens_computed - computed <= 16 and cache.tokens_in_slot >= len(engine.vocab.encode(SOURCE)) - 32
    assert reused.text == engine_for(tiny_checkpoint).infill(typed).text
    # Another place whose prefix shares only the first chunks: those stay, the rest is computed, the answer exact.
    elsewhere = InfillRequest(prefix=SOURCE[:100] + "class Other:\n" + SOURCE[100:300], max_tokens=8)
    assert engine.infill(elsewhere).text == engine_for(tiny_checkpoint).infill(elsewhere).text
    held = len(engine.context.resident[0])
    assert engine.vocab.encode(elsewhere.prefix)[:held] == engine.context.resident[0]
    # A slot handed back to the system holds nothing: the next request computes every chunk.
    engine.context.drop_slot(0)
    computed = cache.tokens_computed
    assert engine.infill(elsewhere).text == engine_for(tiny_checkpoint).infill(elsewhere).text
    assert cache.tokens_computed - computed == held


def test_a_prefix_encoded_a_group_of_chunks_at_a_time_has_the_keys_of_one_forward(tiny_checkpoint):
    # In float32: a later group reads the earlier groups' keys from the slot, which in bfloat16 (--context-dtype)
    # would round them where one forward does not.
    engines = [engine_for(tiny_checkpoint, context_dtype="float32") for _ in range(2)]
    engines[0].prefix_cache.group_tokens = 2**20  # every chunk in one forward
    assert engines[1].prefix_cache.group_tokens == 256
    ids = engines[0].vocab.encode(SOURCE * 4)
    ids = ids[: len(ids) // 16 * 16]
    assert len(ids) > 2 * 256  # three groups
    for engine in engines:
        engine.prefix_cache.encode_into(ids, 0)
    for one, grouped in zip(engines[0].context.k + engines[0].context.v, engines[1].context.k + engines[1].context.v):
        torch.testing.assert_close(grouped[0, :, : len(ids)], one[0, :, : len(ids)], rtol=1e-4, atol=1e-5)


def test_candidates_copy_the_chunks_their_slots_hold(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint, context_cache_mb=0.001)
    request = InfillRequest(prefix=SOURCE + "def g(", suffix="\n", max_tokens=8, n=2)
    engine.infill(request)
    assert engine.context.resident[1] == engine.context.resident[0] != []
    computed = engine.prefix_cache.tokens_computed
    engine.infill(request)
    assert engine.prefix_cache.tokens_computed == computed


def test_a_clients_next_keystroke_lands_in_the_slot_that_holds_its_prefix(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint, max_batch=3, context_cache_mb=0.001)
    first, second = SOURCE + "def g(", SOURCE[::-1] + "def h("
    at_once = [engine.start(InfillRequest(prefix=p, suffix="\n", max_tokens=4)) for p in (first, second)]
    assert [jobs[0].slot for jobs in at_once] == [0, 1]
    for jobs in at_once:
        engine.release(jobs)
    computed = engine.prefix_cache.tokens_computed
    # The second client types first: the lowest free slot holds the first client's prefix, its own is slot 1.
    for prefix, slot in ((second + "x", 1), (first + "a", 0), ("print(", 0)):
        jobs = engine.start(InfillRequest(prefix=prefix, suffix="\n", max_tokens=4))
        assert jobs[0].slot == slot
        engine.release(jobs)
    assert engine.prefix_cache.tokens_computed - computed <= 2 * 16


def _started_job(engine: InfillEngine) -> Job:
    jobs = engine.start(InfillRequest(prefix=SOURCE + "    return ", suffix="\n\nprint(1)\n", max_tokens=12))
    return jobs[0]


def _canvas(engine: InfillEngine, job: Job) -> list[int]:
    return engine.canvases.ids[job.slot, : job.length].tolist()


def _cached_logits(engine: InfillEngine, job: Job) -> torch.Tensor:
    """The step's logits over the slot's cached context for the canvas's masked positions [M, V] (see _masked):
    on a CPU the step computes them for those only."""
    rows = torch.tensor([job.slot])
    span = engine._context_length(job)
    logits, positions = engine.canvas_step._logits(rows, job.length, span, (job.slot, job.slot + 1))
    return logits if positions is not None else logits[0][_masked(engine, job)]


def _masked(engine: InfillEngine, job: Job) -> torch.Tensor:
    return engine.canvases.masked[job.slot, : job.length]


def _recomputed_logits(engine: InfillEngine, job: Job) -> torch.Tensor:
    """Logits of a full recompute of tail + canvas + suffix, done in a spare slot so the job's context stays."""
    spare = engine._free_slots.pop()
    try:
        engine.context.copy_slot(job.slot, spare, job.chunk_len)
        engine.canvases.ids[spare] = engine.canvases.ids[job.slot]
        return engine._group_forward(dataclasses.replace(job, slot=spare), _canvas(engine, job))
    finally:
        engine._free_slots.append(spare)


def test_cached_step_equals_full_recompute_right_after_a_refresh(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint)
    job = _started_job(engine)
    for _ in range(3):  # several steps, each compared on the same canvas
        full = engine._group_forward(job, _canvas(engine, job))  # refreshes the slot's context
        cached, masked = _cached_logits(engine, job), _masked(engine, job)
        assert masked.any()
        assert torch.allclose(cached, full[masked], atol=1e-4), (cached - full[masked]).abs().max()
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
        masked = _masked(engine, job)
        cached = _cached_logits(engine, job).argmax(-1)
        full = _recomputed_logits(engine, job).argmax(-1)[masked]
        agree += int((cached == full).sum())
        total += int(masked.sum())
        engine.step([job])
    assert total and agree / total >= 0.8


def test_refresh_every_step_matches_a_hand_written_uncached_loop(tiny_checkpoint):
    request = InfillRequest(prefix=SOURCE + "x = ", suffix="\n", max_tokens=10, steps=10)
    every_step = engine_for(tiny_checkpoint, refresh_every=1).infill(request)

    engine = engine_for(tiny_checkpoint)
    job = engine.start(request)[0]  # its first step is a full recompute already
    steps, done = 1, job.done
    while not done:  # every step recomputes tail, canvas and suffix: nothing cached but exact prefix chunks
        logits = engine._group_forward(job, _canvas(engine, job))[None].float()
        done = int(denoise(engine.canvases, engine.tables, torch.tensor([job.slot]), logits)[0]) == DONE
        steps += 1
    assert engine._completion(job).text == every_step.text
    assert steps == every_step.steps


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


def test_rotating_cached_keys_equals_computing_them_at_the_new_position(tiny_checkpoint):
    from mercury_lsp.kernels.rope import rope_reference

    model = load_checkpoint(tiny_checkpoint, device="cpu").model
    config = model.config
    keys = torch.randn(1, 5, config.num_kv_heads, config.head_dim)
    queries = torch.zeros(1, 5, config.num_heads, config.head_dim)
    at = torch.arange(40, 45)[None]
    moved = at + 7
    _, rotated_at = rope_reference(queries.clone(), keys.clone(), *model.rope_tables(at))
    _, rotated_moved = rope_reference(queries.clone(), keys.clone(), *model.rope_tables(moved))
    shifted = model.rotate_keys(rotated_at.transpose(1, 2), 7).transpose(1, 2)
    torch.testing.assert_close(shifted, rotated_moved, atol=1e-5, rtol=1e-5)


def test_the_next_keystroke_reuses_the_suffix_and_the_same_request_answers_the_same(tiny_checkpoint):
    engine = engine_for(tiny_checkpoint)
    request = InfillRequest(prefix=SOURCE[:300], suffix=SOURCE[300:700], max_tokens=10)
    first = engine.infill(request)
    assert engine.suffix_cache.hits == 0
    again = engine.infill(request)
    assert engine.suffix_cache.hits == 1
    assert (again.text, again.steps) == (first.text, first.steps)
    typed = engine.infill(InfillRequest(prefix=SOURCE[:300] + "x", suffix=SOURCE[300:700], max_tokens=10))
    assert engine.suffix_cache.hits == 2 and isinstance(typed.text, str)
    exact = engine_for(tiny_checkpoint, reuse_suffix=False)
    exact.infill(request)
    exact.infill(request)
    assert exact.suffix_cache.hits == 0


def test_exact_context_recomputes_the_whole_window_bidirectionally_at_every_step(tiny_checkpoint, monkeypatch):
    engine = engine_for(tiny_checkpoint, exact_context=True)
    calls = []
    forward = engine._group_forward
    monkeypatch.setattr(engine, "_group_forward", lambda job, *args: calls.append(job.chunk_len) or forward(job, *args))
    result = engine.infill(InfillRequest(prefix=SOURCE + "x = ", suffix="\n\nprint(x)\n", max_tokens=10, steps=10))
    assert calls and set(calls) == {0}  # no prefix chunks: the whole prefix is in the window
    assert len(calls) == result.steps  # every step a full recompute
