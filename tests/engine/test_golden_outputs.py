"""The static step gives the tokens the engine gave before it: requests of every kind on committed tiny
checkpoints (Dream layout, DreamOn-style expand/delete, LLaDA), against texts recorded from the previous engine
(`tests/data/golden_engine/expected.json`), served alone and all stepped together. Suffix healing, which
came later and changes what the model is fed at a cursor inside a word, is off here, the filler run joins at the
token threshold, and length first (the canvas end committed as filler from the length distribution) is off, as
they were then."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import EngineSettings, InfillEngine

GOLDEN = Path(__file__).parents[1] / "data" / "golden_engine"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def case(request):
    loaded = load_checkpoint(GOLDEN / request.param, device="cpu")
    return loaded, EXPECTED[request.param]


def test_each_request_alone_gives_the_recorded_texts(case):
    loaded, rows = case
    engine = InfillEngine(loaded, EngineSettings(heal_suffix=False, filler_threshold=None, tail_threshold=None))
    for row in rows:
        result = engine.infill(InfillRequest(**row["request"]))
        assert [c.text for c in result.completions] == row["texts"], row["request"]
        assert result.steps == row["steps"], row["request"]
    assert engine.slots_in_use == 0


def test_all_requests_stepped_together_give_the_recorded_texts(case):
    loaded, rows = case
    engine = InfillEngine(loaded, EngineSettings(max_batch=32, heal_suffix=False, filler_threshold=None,
                                                  tail_threshold=None))
    groups = [engine.start(InfillRequest(**row["request"])) for row in rows]
    everything = [job for group in groups for job in group]
    while not all(job.done for job in everything):
        engine.step(everything)
    for group, row in zip(groups, rows):
        assert [c.text for c in engine.result(group, time.perf_counter()).completions] == row["texts"], row["request"]
        engine.release(group)
    assert engine.slots_in_use == 0
