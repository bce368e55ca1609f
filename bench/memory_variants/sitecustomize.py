"""Engine variants for bench/memory_ab.py, switched in every Python process started with this folder on PYTHONPATH
and MERCURY_MEMORY_VARIANT set (the engine server is a process of its own, so a flag could not reach it):

- `off`: the engine's memory features of issue 21 undone: glibc's malloc defaults (no mallopt, no malloc_trim),
  context slots from torch.zeros (resident from the start, never trimmed or handed back), caches without a bound.
- `heap`: only the C heap's settings undone (glibc's defaults, no malloc_trim); slots and caches as they are.
- `mmap256k`: the C heap of issue 21's first round: mmap threshold fixed at 256 KB, trim threshold 4 MB, two arenas.
- `mmap32`: the same with a 32 MB mmap and a 64 MB trim threshold (glibc's dynamic ceilings, fixed).
- `trims`: glibc's default thresholds and arenas (no mallopt); the trims as they are.
- `buckets`: the CPU step padded to the (batch, canvas) buckets, as on a GPU (CanvasStep(pad_to_buckets=True)).
- `round1`: issue 21's second round undone: a prefix encoded in one forward (no groups), nothing reused from the
  slot a request lands in (nor picked for it), cache entries in the C heap, caches of 48 MB (36 prefix, 12 suffix),
  no trims when the engine drains.
- `nodrain`: as it is, but no trims when a request ends (every 30 s under load and 2 s after a burst only).
- `trim05`: the heap trimmed at most every half second when a request ends, not every second.
- `drainonly`: the heap trimmed (at most once a second) only when the last request in flight ends, not whenever
  one does (the second round's rule).
- `catattention`: the CPU attention of issue 21's fourth round undone: each row's context gathered from its slot,
  concatenated with the canvas keys and values, and attended with a key mask (SDPA) at the batch's longest context.
- `f32context`: the context slots and caches in float32 (`--context-dtype float32`), the default again, so `on`
  now. In bench/results/issue21/round4's A/B logs `on` kept them in bfloat16, the CPU default for part of that round.
- `round3`: the fourth, fifth and sixth rounds undone (`catattention`, `f32context`, `round4` and `round5`
  together): the third round's engine.
- `round4`: the fifth and sixth rounds undone: every step's logits spread over [batch, canvas, vocabulary] zeros
  (nothing is computed for committed positions either way) and scored in one piece, not a chunk of positions at a
  time; MKL keeps its buffers (`round5`).
- `round5`: the sixth round undone: MKL's memory manager keeps its GEMM buffers (MKL_DISABLE_FAST_MM set empty
  before torch loads, so the engine package's default does not apply).
- `none`: every round of issue 21 undone (`off`, `round1`, `round3`, `round4` and `round5` together, the caches
  without a bound as in `off`): the engine the issue's "no latency cost" compares against.

MERCURY_MEMORY_PROBE=FILE (with or without a variant) also starts memory_probe.py's thread in the engine server.
"""

import os

_VARIANT = os.environ.get("MERCURY_MEMORY_VARIANT")

if _VARIANT in ("round5", "round4", "round3", "none"):
    os.environ["MKL_DISABLE_FAST_MM"] = ""  # read once when torch loads MKL; empty keeps MKL's default

if _VARIANT is not None:
    # Every variant, `on` too, imports the engine here (at start-up, on the main thread), so that they differ in
    # nothing else: where modules are imported decides which malloc arena holds their objects. The engine package
    # first: it sets MKL's memory default before torch loads.
    import mercury_lsp.engine  # noqa: F401 (imported for all)

    # isort: split
    import torch

    from mercury_lsp.engine import allocator, batcher, context_cache, infill, step  # noqa: F401 (imported for all)

if _VARIANT in ("off", "none"):
    allocator.configure_heap = lambda: False
    allocator.trim_heap = lambda: None
    context_cache._zeros = lambda shape, dtype, device: (torch.zeros(shape, dtype=dtype, device=device), None)
    _engine_init = infill.InfillEngine.__init__

    def _unbounded_caches(self, *args, **kwargs):
        _engine_init(self, *args, **kwargs)
        self.prefix_cache.max_bytes = self.suffix_cache.max_bytes = 2**40

    infill.InfillEngine.__init__ = _unbounded_caches
elif _VARIANT == "heap":
    allocator.configure_heap = lambda: False
    allocator.trim_heap = lambda: None
elif _VARIANT in ("mmap256k", "mmap32"):
    _MMAP, _TRIM = (256 * 1024, 4 * 2**20) if _VARIANT == "mmap256k" else (32 * 2**20, 64 * 2**20)
    _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # malloc.h
    allocator.configure_heap = lambda: all(allocator._LIBC.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, _MMAP), (_M_TRIM_THRESHOLD, _TRIM), (allocator.M_ARENA_MAX, allocator.ARENAS)))
elif _VARIANT == "trims":
    allocator.configure_heap = lambda: False
elif _VARIANT == "buckets":
    _step_init = step.CanvasStep.__init__

    def _padded(self, *args, **kwargs):
        _step_init(self, *args, **{**kwargs, "pad_to_buckets": True})

    step.CanvasStep.__init__ = _padded
elif _VARIANT == "drainonly":
    _step_counting_finished = batcher.Batcher._step

    def _step_finishing_nothing(self):
        _step_counting_finished(self)
        return 0  # so the heap is trimmed only when the last request in flight ends (the second round's rule)

    batcher.Batcher._step = _step_finishing_nothing
elif _VARIANT == "trim05":
    batcher.TRIM_AFTER_REQUEST_S = 0.5
elif _VARIANT == "nodrain":
    batcher.TRIM_AFTER_REQUEST_S = float("inf")
elif _VARIANT not in (None, "on", "round1", "none", "catattention", "f32context", "round3", "round4",
                      "round5"):
    raise SystemExit(f"MERCURY_MEMORY_VARIANT={_VARIANT!r}: on, off, heap, trims, mmap256k, mmap32, buckets, trim05, "
                     "round1, nodrain, drainonly, catattention, f32context, round3, round4, round5 or none")


def gathered_and_concatenated(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale, ctx_rows=None):
    """The third round's CPU attention: the rows' contexts gathered at the longest, concatenated with the canvas,
    and a key mask for SDPA (also bench/results/issue21/round4/attention_bench.py's baseline)."""
    import torch

    if ctx_rows is not None:
        k_ctx, v_ctx = k_ctx.index_select(0, ctx_rows), v_ctx.index_select(0, ctx_rows)
    keys, values = torch.cat([k_ctx, k_new], dim=2).float(), torch.cat([v_ctx, v_new], dim=2).float()
    valid = torch.cat([torch.arange(k_ctx.shape[2])[None, :] < ctx_len[:, None],
                       torch.arange(k_new.shape[2])[None, :] < new_len[:, None]], dim=1)
    return torch.nn.functional.scaled_dot_product_attention(
        q.float(), keys, values, attn_mask=valid[:, None, None, :], scale=scale,
        enable_gqa=k_ctx.shape[1] != q.shape[1]).to(q.dtype)


if _VARIANT in ("catattention", "round3", "none"):
    from mercury_lsp.kernels import attention

    attention.canvas_attention_reference = gathered_and_concatenated

if _VARIANT in ("round4", "round3", "none"):
    from mercury_lsp.engine import sampler

    sampler.SCORE_CHUNK_BYTES = 2**60
    _denoise_packed = sampler.denoise

    def _whole_canvases(slots, tables, rows, logits, measure="probability", sampled=(), probe=None, positions=None):
        if positions is not None:  # the fourth round's [B, C, V]: zeros where nothing was computed
            whole = torch.zeros(*positions.shape, logits.shape[-1], dtype=logits.dtype, device=logits.device)
            whole[positions] = logits
            logits = whole
        return _denoise_packed(slots, tables, rows, logits, measure, sampled, probe)

    step.denoise = infill.denoise = _whole_canvases

if _VARIANT in ("f32context", "round3", "none"):
    _engine_init_f32 = infill.InfillEngine.__init__

    def _float32_context(self, loaded, settings=None):
        settings = settings or infill.EngineSettings()
        settings.context_dtype = settings.context_dtype or "float32"
        _engine_init_f32(self, loaded, settings)

    infill.InfillEngine.__init__ = _float32_context

if _VARIANT in ("round1", "none"):
    _engine_init_round1 = infill.InfillEngine.__init__

    def _first_round(self, *args, **kwargs):
        _engine_init_round1(self, *args, **kwargs)
        if _VARIANT == "round1" and self.device.type == "cpu" and self.settings.context_cache_mb is None:
            self.prefix_cache.max_bytes, self.suffix_cache.max_bytes = 36 * 2**20, 12 * 2**20
        self.prefix_cache.group_tokens = 2**20

    infill.InfillEngine.__init__ = _first_round
    context_cache.PrefixCache.held_run = lambda self, slot, ids: 0

    def _in_heap(kv, dtype=None):
        block = torch.stack([t for pair in kv for t in pair]).to(dtype or kv[0][0].dtype)
        return [(block[2 * i], block[2 * i + 1]) for i in range(len(kv))]

    context_cache._packed = _in_heap
    batcher.TRIM_AFTER_REQUEST_S = float("inf")

if os.environ.get("MERCURY_MEMORY_PROBE"):  # the engine server only: the probe starts with its first InfillEngine
    from memory_probe import start_from_environment

    from mercury_lsp.engine import infill as _infill

    _probe_engine_init = _infill.InfillEngine.__init__

    def _probed(self, *args, **kwargs):
        _probe_engine_init(self, *args, **kwargs)
        if not getattr(_infill, "_probe_started", False):
            _infill._probe_started = True
            start_from_environment(self)

    _infill.InfillEngine.__init__ = _probed
