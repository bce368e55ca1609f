"""The engine's step as CUDA graphs: replay equals eager, no capture after warm-up, memory flat (needs a GPU;
`bench/gpu_session.sh check` runs these on a lent one)."""

from __future__ import annotations

import random
import time

import pytest
import torch

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.step import BATCH_BUCKETS, CANVAS_BUCKETS

from checkpoints import make_tiny_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SOURCE = "".join(f"def f{i}(x):\n    return x * {i} + total\n\n" for i in range(30))


@pytest.fixture(scope="module")
def gpu_checkpoint(tmp_path_factory):
    # head_dim 16: the smallest the Triton attention kernel takes.
    return make_tiny_checkpoint(tmp_path_factory.mktemp("gpu") / "model", hidden=64, heads=4, kv_heads=2)


def mixed_requests(count: int, seed: int = 0) -> list[InfillRequest]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        cut = rng.randrange(1, len(SOURCE) - 1)
        out.append(InfillRequest(
            prefix=SOURCE[:cut], suffix=SOURCE[cut : cut + rng.randrange(0, 400)],
            max_tokens=rng.choice([4, 8, 16, 24, 32, 64, 100]), single_line=rng.random() < 0.3, seed=i,
        ))
    return out


def run_batched(engine: InfillEngine, requests: list[InfillRequest]) -> list[list[str]]:
    """Start requests in waves of up to the slot count and step them together, as the batcher does."""
    texts: list[list[str]] = []
    for first in range(0, len(requests), 4):
        groups = [engine.start(r) for r in requests[first : first + 4]]
        jobs = [j for g in groups for j in g]
        while not all(j.done for j in jobs):
            engine.step(jobs)
        for group in groups:
            texts.append([c.text for c in engine.result(group, time.perf_counter()).completions])
            engine.release(group)
    return texts


def test_graph_replay_equals_eager_at_the_same_shapes(gpu_checkpoint):
    loaded = load_checkpoint(gpu_checkpoint, device="cuda", dtype=torch.float32)
    graphed = InfillEngine(loaded, EngineSettings(max_batch=8))
    graphed.warm_up()
    assert graphed.canvas_step.graph_error is None
    eager = InfillEngine(loaded, EngineSettings(max_batch=8, cuda_graphs=False))
    assert eager.canvas_step.pad_to_buckets  # the same bucket shapes, run eagerly
    requests = mixed_requests(24)
    assert run_batched(graphed, requests) == run_batched(eager, requests)
    assert graphed.canvas_step.replays > 0 and eager.canvas_step.replays == 0


def test_no_capture_after_warm_up_and_memory_stays_flat(gpu_checkpoint):
    loaded = load_checkpoint(gpu_checkpoint, device="cuda")
    engine = InfillEngine(loaded, EngineSettings(max_batch=16))
    engine.warm_up()
    captured = engine.canvas_step.captures
    assert captured == len(BATCH_BUCKETS) * len(CANVAS_BUCKETS)
    run_batched(engine, mixed_requests(40, seed=1))  # the prefix cache fills to its bound
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    run_batched(engine, mixed_requests(200, seed=2))
    torch.cuda.synchronize()
    assert engine.canvas_step.captures == captured
    assert engine.slots_in_use == 0
    assert torch.cuda.memory_allocated() - before < 64 * 2**20
