"""What the engine holds: CPU context slots resident only where written and handed back (after a burst too),
caches within their bytes, slots sized from --max-batch and the model's positions (and reported in /health), device
memory in /metrics on CUDA, the model built for loading without importing torch's symbolic-shape stack, no
Triton on a CPU, and no GEMM buffers kept by MKL."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mercury_lsp.engine.batcher import Batcher
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.context_cache import ContextSlots
from mercury_lsp.engine.infill import EngineSettings, InfillEngine, InfillError, InfillRequest
from mercury_lsp.engine.metrics import EngineMetrics
from mercury_lsp.engine.model import ModelConfig

SOURCE = "".join(f"def f{i}(x):\n    return x * {i} + total\n\n" for i in range(40))


def resident_mb() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no Rss line")


def test_cpu_slots_are_resident_only_where_written_and_handed_back():
    config = ModelConfig(vocab_size=64, hidden_size=256, intermediate_size=512, num_layers=4, num_heads=4,
                         num_kv_heads=4, head_dim=64, max_position_embeddings=4096)
    before = resident_mb()
    slots = ContextSlots(config, 8, 4096, torch.float32, torch.device("cpu"))
    assert slots.slot_bytes == 4 * 2 * 4 * 4096 * 64 * 4  # 32 MB a slot, 288 MB for the nine
    assert resident_mb() - before < 8  # reserved, not resident
    for k, v in zip(slots.k, slots.v):
        k[3].fill_(1.0)
        v[3].fill_(2.0)
    written = resident_mb()
    assert written - before > 28
    assert slots.drop_slot(3)
    assert written - resident_mb() > 28  # the pages went back
    assert all(bool((k[3] == 0).all()) and bool((v[3] == 0).all()) for k, v in zip(slots.k, slots.v))


def test_a_trimmed_slot_keeps_its_first_positions_and_hands_back_the_rest():
    config = ModelConfig(vocab_size=64, hidden_size=256, intermediate_size=512, num_layers=4, num_heads=4,
                         num_kv_heads=4, head_dim=64, max_position_embeddings=4096)
    slots = ContextSlots(config, 4, 4096, torch.float32, torch.device("cpu"))
    for k, v in zip(slots.k, slots.v):
        k[1].fill_(1.0)
        v[1].fill_(2.0)
        k[2].fill_(3.0)  # the neighbour must not lose a byte
    written = resident_mb()
    assert slots.trim_slot(1, 100)
    assert written - resident_mb() > 0.9 * 32 * (4096 - 128) / 4096  # all but the pages of the first positions
    for k, v in zip(slots.k, slots.v):
        assert bool((k[1, :, :100] == 1).all()) and bool((v[1, :, :100] == 2).all())
        assert bool((k[1, :, 128:] == 0).all()) and bool((v[1, :, 128:] == 0).all())
        assert bool((k[2] == 3).all())


def test_a_released_slot_holds_only_its_last_context(tiny_checkpoint):
    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"), EngineSettings(max_batch=2))
    engine.infill(InfillRequest(prefix=SOURCE[:1500], suffix=SOURCE[1500:1800], max_tokens=4))
    keys = engine.context.k[0][0]  # slot 0: [heads, positions, head_dim]
    long_context = int((keys != 0).any(-1).any(0).nonzero().max()) + 1
    engine.infill(InfillRequest(prefix=SOURCE[:60], max_tokens=4))
    short_context = int(engine.context.length[0])
    assert short_context < long_context // 4
    # What the long request left past the short one's keys went back to the system: zeros from the next page on.
    page_positions = 4096 // (keys.shape[-1] * keys.element_size())
    assert bool((keys[:, -(-short_context // page_positions) * page_positions :] == 0).all())


def test_caches_stay_within_their_bytes_and_documents_share_prefix_chunks(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint, device="cpu")
    engine = InfillEngine(loaded, EngineSettings(chunk_size=16, context_cache_mb=0.05))
    prefix, suffix = engine.prefix_cache, engine.suffix_cache
    assert prefix.max_bytes + suffix.max_bytes <= 0.05 * 2**20
    for cut in range(200, len(SOURCE), 97):  # jumping around one document, then typing at each place
        for typed in range(3):
            engine.infill(InfillRequest(prefix=SOURCE[: cut + typed], suffix=SOURCE[cut + typed :], max_tokens=4))
            assert 0 < prefix.bytes <= prefix.max_bytes and suffix.bytes <= suffix.max_bytes
    assert prefix.bytes == sum(t.numel() * t.element_size() for kv in prefix.entries.values() for p in kv for t in p)
    # Two places in one document: the second computes only the chunks past their common start.
    roomy = InfillEngine(loaded, EngineSettings(chunk_size=16))
    roomy.infill(InfillRequest(prefix=SOURCE[:1200], max_tokens=4))
    computed = roomy.prefix_cache.tokens_computed
    roomy.infill(InfillRequest(prefix=SOURCE[:1000], max_tokens=4))
    assert roomy.prefix_cache.tokens_computed - computed <= 16  # the chunks before 1000 were all there


def test_cache_entries_go_back_to_the_system_when_evicted():
    from mercury_lsp.engine.context_cache import SuffixCache

    # A freed 16 MB block lifts glibc's mmap threshold to 16 MB (and its trim threshold to 32): from then on 1.5 MB
    # entries taken from the C heap would stay resident after their eviction, among the requests' activations.
    torch.ones(16 * 2**20 // 4)  # allocated and freed at once
    cache = SuffixCache(max_bytes=64 * 2**20)
    before = resident_mb()
    for i in range(16):  # 16 entries of 1.5 MB: six layers of keys and values [8 heads, 64 tokens, 64]
        cache.put([i], 0, [(torch.full((8, 64, 64), float(i)), torch.full((8, 64, 64), -float(i))) for _ in range(6)])
    held = resident_mb()
    assert held - before > 20
    cache.max_bytes = 0
    cache.put([99], 0, [(torch.zeros(8, 1, 64), torch.zeros(8, 1, 64))])  # evicts every entry, itself too
    assert not cache.entries and cache.bytes == 0
    assert held - resident_mb() > 20


# Heap bytes in use plus glibc's mmapped blocks, before and after float32 GEMMs of the engine's shapes (a block
# step's rows over its MLP, attention and head weights), in a fresh process that imports the engine first.
_GEMMS = """
import ctypes, mercury_lsp.engine, torch
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks '
                                                'fordblks keepcost').split()]
libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = Info
held = lambda: (libc.mallinfo2().uordblks + libc.mallinfo2().hblkhd) / 2**20
weights = [torch.randn(1408, 512), torch.randn(512, 1408), torch.randn(512, 512), torch.randn(8192, 512)]
before = held()
for rows in (17, 65, 195, 256):
    for w in weights:
        torch.nn.functional.linear(torch.randn(rows, w.shape[1]), w)
print(held() - before)
"""


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch is built without MKL here")
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap is counted with glibc's mallinfo2")
def test_mkl_keeps_no_gemm_buffers_in_the_engine_process():
    def grown_mb(setting: str | None) -> float:
        env = {k: v for k, v in os.environ.items() if k != "MKL_DISABLE_FAST_MM"}
        if setting is not None:
            env["MKL_DISABLE_FAST_MM"] = setting
        done = subprocess.run([sys.executable, "-c", _GEMMS], capture_output=True, text=True, timeout=120, env=env)
        if "mallinfo2" in done.stderr:
            pytest.skip("no glibc 2.33+ here to count the heap with")
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout)

    assert grown_mb(None) < 1  # the engine package's default: MKL takes its buffers from malloc and frees them
    assert grown_mb("") > 4  # a user's empty setting keeps MKL's own manager, which holds on to them


def test_a_model_built_for_loading_imports_no_sympy(tiny_checkpoint):
    code = ("import sys; from mercury_lsp.engine.checkpoint import load_checkpoint; "
            f"load_checkpoint({str(tiny_checkpoint)!r}, device='cpu'); print('sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_an_engine_on_a_cpu_imports_no_triton(tiny_checkpoint):
    pytest.importorskip("triton")  # installed, so that an eager import would show
    code = ("import sys; from mercury_lsp.engine.checkpoint import load_checkpoint; "
            "from mercury_lsp.engine.infill import InfillEngine, InfillRequest; "
            f"engine = InfillEngine(load_checkpoint({str(tiny_checkpoint)!r}, device='cpu')); "
            "engine.infill(InfillRequest(prefix='def f(x):\\n    return ', max_tokens=4)); "
            "print('triton' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_kernels_imported_before_triton_still_hand_out_jitted_kernels():
    pytest.importorskip("triton")
    # The order a test session meets them in: the engine's modules first, then a test asking for the kernels.
    code = ("import sys; from mercury_lsp.kernels import commit, dispatch; assert 'triton' not in sys.modules; "
            "print(type(commit._commit_kernel).__name__, callable(commit.commit_confident_triton), "
            "dispatch.TRITON_AVAILABLE)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["JITFunction", "True", "True"], done.stderr[-2000:]


def test_a_bfloat16_context_holds_the_float32_keys_rounded_in_half_the_bytes(tiny_checkpoint):
    """EngineSettings.context_dtype (--context-dtype bfloat16) on a float32 model."""
    loaded = load_checkpoint(tiny_checkpoint, device="cpu")
    engines = {dtype: InfillEngine(loaded, EngineSettings(max_batch=2, chunk_size=16, context_dtype=dtype))
               for dtype in ("float32", "bfloat16")}
    full, half = engines["float32"], engines["bfloat16"]
    assert half.context.k[0].dtype == torch.bfloat16 and full.context.k[0].dtype == torch.float32
    assert half.context.slot_bytes * 2 == full.context.slot_bytes
    request = InfillRequest(prefix=SOURCE[:700], suffix=SOURCE[700:900], max_tokens=4)
    for engine in engines.values():
        engine.infill(request)
        engine.infill(request)  # the second reuses the first's suffix, from the cache, rotated
    assert half.suffix_cache.hits == full.suffix_cache.hits == 1
    # Chunks, suffixes and the prefix tail in the slot: the float32 engine's keys/values, rounded to bfloat16.
    length = int(full.context.length[0])
    assert length == int(half.context.length[0]) > 200
    for kept, exact in zip(half.context.k + half.context.v, full.context.k + full.context.v):
        torch.testing.assert_close(kept[0, :, :length].float(), exact[0, :, :length], rtol=2**-7, atol=1e-2)
    for cache in (half.prefix_cache.entries, {k: kv for k, (_, kv) in half.suffix_cache.entries.items()}):
        assert cache and all(t.dtype == torch.bfloat16 for kv in cache.values() for pair in kv for t in pair)
    # Unless told otherwise, the context is kept in the weights' dtype.
    assert InfillEngine(loaded, EngineSettings(max_batch=1)).context.k[0].dtype == loaded.model.embed_tokens.weight.dtype
    with pytest.raises(InfillError, match="context dtype"):
        InfillEngine(loaded, EngineSettings(context_dtype="int8"))


def test_slots_are_sized_from_max_batch_and_the_models_positions(tiny_checkpoint, tmp_path):
    # A copy of the tiny model that knows only 256 positions: its slots must not be sized for the 4,096 default.
    short = tmp_path / "short"
    shutil.copytree(tiny_checkpoint, short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps(config | {"max_position_embeddings": 256}))
    for folder, max_batch, positions in ((tiny_checkpoint, 3, 4096), (short, 5, 256)):
        loaded = load_checkpoint(folder, device="cpu")
        engine = InfillEngine(loaded, EngineSettings(max_batch=max_batch))
        layers, kv_heads = loaded.model.config.num_layers, loaded.model.config.num_kv_heads
        assert len(engine.context.k) == len(engine.context.v) == layers
        assert engine.context.k[0].shape[:3] == (max_batch + 1, kv_heads, positions)  # + 1: the padding rows' slot
        assert engine.context_capacity == positions
    # A context limit below the model's positions sizes them instead.
    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"),
                          EngineSettings(max_batch=2, max_context_tokens=512))
    assert engine.context.k[0].shape[:3] == (3, kv_heads, 512)


def test_health_reports_the_slots_max_batch_asked_for_and_a_burst_hands_them_back(tiny_checkpoint):
    asyncio.run(_health_memory(tiny_checkpoint))


async def _health_memory(tiny_checkpoint) -> None:
    batcher = Batcher(tiny_checkpoint, "cpu", EngineMetrics(), max_batch=3, max_queue=8, threads=1)
    assert batcher.memory() is None  # nothing to report before the model is loaded
    batcher.start()
    try:
        while batcher.state in ("loading", "warming"):
            await asyncio.sleep(0.02)
        memory = batcher.memory()
        context = batcher._engine.context
        assert memory["context_slots"] == {"slots": 3, "positions": 4096,
                                           "mb_per_slot": round(context.slot_bytes / 2**20, 1), "dtype": "float32"}
        assert memory["prefix_cache"]["max_mb"] > 0 and memory["suffix_cache"]["max_mb"] > 0
        assert memory["returned_after_bursts"] == 0
        # A burst of three at once fills three slots; 2 s after it, every slot past the first goes back.
        burst = [batcher.submit(InfillRequest(prefix=SOURCE[: 400 + 100 * i], max_tokens=4)) for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*(ticket.future for ticket in burst)), 120)
        tokens = batcher.memory()["prefix_tokens"]
        assert tokens["computed"] > 0 and set(tokens) == {"in_slot", "from_cache", "computed"}
        written = [bool((context.k[0][slot] != 0).any()) for slot in range(3)]
        assert sum(written) == 3, written
        deadline = time.monotonic() + 30
        while batcher.memory()["returned_after_bursts"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert batcher.memory()["returned_after_bursts"] == 1
        assert all(bool((k[1:] == 0).all()) and bool((v[1:] == 0).all()) for k, v in zip(context.k, context.v))
    finally:
        batcher.stop()


def test_the_heap_is_trimmed_when_a_request_ends(tiny_checkpoint, monkeypatch):
    from mercury_lsp.engine import allocator
    from mercury_lsp.engine import batcher as batcher_module

    trims: list[int] = []  # requests still in flight at each trim
    monkeypatch.setattr(batcher_module, "TRIM_AFTER_REQUEST_S", float("inf"))
    asyncio.run(_trims_after_requests(tiny_checkpoint, monkeypatch, allocator, batcher_module, trims))


async def _trims_after_requests(tiny_checkpoint, monkeypatch, allocator, batcher_module, trims: list[int]) -> None:
    batcher = Batcher(tiny_checkpoint, "cpu", EngineMetrics(), max_batch=2, max_queue=8, threads=1)
    monkeypatch.setattr(allocator, "trim_heap", lambda: trims.append(len(batcher._active)))
    batcher.start()
    try:
        while batcher.state in ("loading", "warming"):
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        loaded = len(trims)  # the trim after loading

        async def one_request() -> int:
            ticket = batcher.submit(InfillRequest(prefix=SOURCE[:400], max_tokens=4))
            await asyncio.wait_for(ticket.future, 60)
            await asyncio.sleep(0.3)  # well before the burst's memory goes back (2 s)
            assert batcher.memory()["returned_after_bursts"] == 0
            return len(trims)

        assert await one_request() == loaded  # trims after requests off: none
        monkeypatch.setattr(batcher_module, "TRIM_AFTER_REQUEST_S", 0.0)
        assert await one_request() == loaded + 1  # on: one, when the request ended
        # With another request still in flight (a long one beside a one-step one), the engine does not drain when
        # the short one ends, and still trims: several clients seldom leave it idle.
        before = len(trims)
        long = batcher.submit(InfillRequest(prefix=SOURCE[:400], max_tokens=48, steps=48))
        short = batcher.submit(InfillRequest(prefix=SOURCE[:300], max_tokens=1, steps=1))
        await asyncio.wait_for(short.future, 60)
        assert not long.future.done()
        await asyncio.wait_for(long.future, 60)
        assert 1 in trims[before:]  # a trim while the long request was in flight
    finally:
        batcher.stop()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device memory gauges exist only on a CUDA engine")
def test_metrics_report_cuda_allocated_and_reserved_memory(tiny_checkpoint):
    engine = InfillEngine(load_checkpoint(tiny_checkpoint, device="cuda"), EngineSettings(max_batch=2, cuda_graphs=False))
    engine.infill(InfillRequest(prefix=SOURCE[:300], max_tokens=4))
    metrics = EngineMetrics()
    metrics.watch_memory(engine)
    values = {line.split()[0]: float(line.split()[1]) for line in metrics.render().decode().splitlines()
              if line.startswith("mercury_cuda_memory_")}
    allocated, reserved = values["mercury_cuda_memory_allocated_bytes"], values["mercury_cuda_memory_reserved_bytes"]
    assert allocated >= sum(t.numel() * t.element_size() for t in engine.context.k + engine.context.v)  # slots live
    assert reserved >= allocated
