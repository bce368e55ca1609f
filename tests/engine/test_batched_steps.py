"""Step-level batching in the engine: any mix of requests stepped together gives each its serial result."""

from __future__ import annotations

import time

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import InfillEngine, InfillRequest

from checkpoints import make_tiny_checkpoint

SOURCE = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(20))


def test_mixed_requests_stepped_together_match_serial_results(tmp_path):
    # The expand checkpoint changes canvas lengths mid-flight; refine adds refresh steps: the hardest mix.
    loaded = load_checkpoint(make_tiny_checkpoint(tmp_path / "expand", expand=True), device="cpu")
    requests = [
        InfillRequest(prefix=SOURCE[: 40 * (i + 1)], suffix=SOURCE[40 * (i + 1) :][:80], max_tokens=6 + 5 * i,
                      refine=i % 2 == 0, seed=i, length_mode=("filler", "expand")[i % 2], n=1 + i % 2)
        for i in range(6)
    ]
    engine = InfillEngine(loaded)
    groups = [engine.start(r) for r in requests]
    everything = [job for group in groups for job in group]
    while not all(job.done for job in everything):
        engine.step(everything)
    batched = [engine.result(group, time.perf_counter()).candidates for group in groups]
    serial = [InfillEngine(loaded).infill(r).candidates for r in requests]
    assert batched == serial
