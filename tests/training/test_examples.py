"""Training examples are built the way the engine tokenizes, heals and lays out an infill request."""

from __future__ import annotations

import random

import torch

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.checkpoint import LoadedModel
from mercury_lsp.engine.infill import InfillEngine
from mercury_lsp.engine.model import ModelConfig, Transformer
from mercury_lsp.engine.training.train import ExampleBuilder, infill_parts, pick_hole
from mercury_lsp.engine.vocab import Vocabulary

from corpus_sample import MODULES

TEXT = MODULES["text/words.py"]


def engine_for(vocab: Vocabulary) -> InfillEngine:
    config = ModelConfig(vocab_size=vocab.size, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                         num_kv_heads=2, head_dim=16, shifted=True)
    model = Transformer(config).eval().requires_grad_(False)
    return InfillEngine(LoadedModel(model, vocab, "qwen2", "test", torch.device("cpu"), torch.float32))


def test_parts_match_what_the_engine_sees(vocab: Vocabulary) -> None:
    engine = engine_for(vocab)
    for cut in ["    counts = ", "    for wo", "    counts = {}\n", "def count_words(te"]:
        a = TEXT.index(cut) + len(cut)
        b = TEXT.index("\n", a + 1)
        prefix_ids, target, suffix_ids, canvas_len = infill_parts(vocab, TEXT, a, b, 16, 10_000)
        job = engine.start(InfillRequest(TEXT[:a], TEXT[b:], max_tokens=16, length_mode="filler"))[0]
        assert job.prefix_ids == prefix_ids
        assert job.suffix_ids == suffix_ids
        assert job.length == canvas_len
        # The target spells the healed bytes, then the hole, and starts with a token the engine allows.
        assert vocab.token_bytes_of(target) == job.spec.heal + TEXT[a:b].encode()
        if job.spec.first_allowed is not None:
            assert target[0] in job.spec.first_allowed.tolist()
        engine.release([job])


def test_a_long_hole_is_cut_to_the_canvas(vocab: Vocabulary) -> None:
    prefix_ids, target, suffix_ids, canvas_len = infill_parts(vocab, TEXT, 0, len(TEXT), 8, 10_000)
    assert prefix_ids == [] and canvas_len == 8 and len(target) == 8
    assert vocab.decode(target) + vocab.decode(suffix_ids) == TEXT


def test_examples_fill_the_window_and_weight_only_masked_positions(vocab: Vocabulary) -> None:
    builder = ExampleBuilder(list(MODULES.values()), vocab, seq_len=96, rng=random.Random(1))
    kinds = set()
    for _ in range(60):
        example = builder.example()
        kinds.add(example.kind)
        assert len(example.ids) == len(example.targets) == len(example.weights) == 96
        weighted = [i for i, w in enumerate(example.weights) if w > 0]
        assert weighted and all(example.ids[i] == vocab.mask_id for i in weighted)
        unweighted = [i for i, w in enumerate(example.weights) if w == 0]
        assert all(example.ids[i] == example.targets[i] or example.targets[i] in vocab.filler_ids for i in unweighted)
        assert vocab.mask_id not in example.targets
    assert kinds == {"infill", "diffusion"}


def test_infill_canvas_is_content_then_filler(vocab: Vocabulary) -> None:
    builder = ExampleBuilder(list(MODULES.values()), vocab, seq_len=128, rng=random.Random(2))
    seen_filler = False
    for _ in range(40):
        example = builder.infill_example()
        if example is None:
            continue
        weighted = [i for i, w in enumerate(example.weights) if w > 0]
        canvas = example.targets[weighted[0] : weighted[-1] + 1]
        filler = [t in vocab.filler_ids for t in canvas]
        # Once filler starts it runs to the canvas end: the sampler only commits filler from the right edge.
        if True in filler:
            seen_filler = True
            first = filler.index(True)
            assert all(filler[first:])
    assert seen_filler


def test_holes_cover_line_starts_mid_words_and_empty_gaps() -> None:
    rng = random.Random(0)
    holes = [pick_hole(TEXT, rng) for _ in range(400)]
    assert all(0 <= a <= b <= len(TEXT) for a, b in holes)
    assert any(a > 0 and TEXT[a - 1] == "\n" for a, _ in holes)
    assert any(a > 0 and TEXT[a - 1].isalpha() and TEXT[a].isalpha() for a, b in holes if a < len(TEXT))
    assert any(a == b for a, b in holes)
    assert any("\n" in TEXT[a:b] for a, b in holes)


def test_canvas_masks_always_leave_something_to_predict(vocab: Vocabulary) -> None:
    builder = ExampleBuilder(list(MODULES.values()), vocab, seq_len=96, rng=random.Random(3))
    progress_seen = False
    for canvas_len, content_len in [(1, 0), (1, 1), (8, 0), (8, 3), (8, 8), (33, 12)] * 30:
        masked, weight = builder._canvas_mask(canvas_len, content_len)
        assert len(masked) == canvas_len and any(masked) and weight > 0
        if content_len and weight == 1.0 / sum(masked):
            # The sampler's midway state: committed content on the left, a filler run on the right.
            first = masked.index(True)
            last = canvas_len - 1 - masked[::-1].index(True)
            progress_seen |= all(masked[first : last + 1])
    assert progress_seen


def test_infill_examples_start_with_the_files_header_as_the_engine_keeps_it(vocab: Vocabulary) -> None:
    from mercury_lsp.engine.api.file_header import file_header

    keys = list(MODULES)
    builder = ExampleBuilder(list(MODULES.values()), vocab, seq_len=128, rng=random.Random(4), keys=keys)
    headers = {key: vocab.encode(file_header(key, "python")) for key in keys}
    with_header = 0
    for _ in range(40):
        example = builder.infill_example()
        if example is None:
            continue
        first_weighted = next(i for i, w in enumerate(example.weights) if w > 0)
        context = example.ids[:first_weighted]
        found = [h for h in headers.values() if any(context[i : i + len(h)] == h for i in range(len(context)))]
        with_header += bool(found)
    assert with_header >= 20  # most infill examples carry the header (the rest stand for requests without one)
