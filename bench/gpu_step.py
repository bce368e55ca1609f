"""The denoising step on one GPU: kernel checks at real shapes, then step and infill timings against the floor.

Needs only torch and triton: the kernels are loaded from kernels/ by file path, and the layer stack (Qwen2.5
shapes, random bf16 weights) is built here, not taken from the engine.

    python bench/gpu_step.py                      # one H100 / H200, under 8 minutes
    python bench/gpu_step.py --out bench/step.md  # also write the tables as markdown
    python bench/gpu_step.py --device cpu --small # tiny shapes on the CPU, reference kernels: proves it runs
    TRITON_INTERPRET=1 python bench/gpu_step.py --device cpu --small   # ... with the Triton kernels interpreted
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch.nn import functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
EPS = 1e-6
ROPE_THETA = 1_000_000.0
THRESHOLD = 0.9
RELATIVE_ERROR_LIMIT = 1e-2
AR_HEADROOM = 4

# Targets of issue 5, set for an H200.
TARGET_STEP_OVER_FLOOR_7B = 1.25
TARGET_INFILL_CACHED_7B_MS = 40.0
TARGET_INFILL_PREFILL_7B_MS = 60.0
TARGET_SPEEDUP_OVER_AR = 8.0
TARGET_STEP_05B_MS = 1.0


def load_kernels() -> dict[str, ModuleType]:
    """Import kernels/ as a private package, so the script runs from a checkout without installing it."""
    name = "_bench_step_kernels"
    folder = REPO_ROOT / "kernels"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    modules = ("attention", "commit", "confidence", "rmsnorm", "rope", "swiglu")
    return {m: importlib.import_module(f"{name}.{m}") for m in modules}


K = load_kernels()


@dataclass(frozen=True)
class Shape:
    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def qkv_width(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim


@dataclass(frozen=True)
class Workload:
    prefix: int
    suffix: int
    canvas: int
    ar_tokens: int
    long_context: int

    @property
    def context(self) -> int:
        return self.prefix + self.suffix


QWEN_05B = Shape("Qwen2.5-0.5B", 896, 24, 14, 2, 64, 4864, 151936, tied=True)
QWEN_7B = Shape("Qwen2.5-7B", 3584, 28, 28, 4, 128, 18944, 152064, tied=False)
TINY_05B = Shape("tiny (0.5B-like GQA 7:1)", 112, 2, 7, 1, 16, 256, 1003, tied=True)
TINY_7B = Shape("tiny (7B-like GQA 7:1, untied)", 224, 3, 14, 2, 16, 512, 1500, tied=False)
REAL = Workload(prefix=768, suffix=256, canvas=64, ar_tokens=64, long_context=32768)
SMALL = Workload(prefix=48, suffix=16, canvas=8, ar_tokens=8, long_context=300)


# ----------------------------------------------------------------------------------------------- kernels


@dataclass(frozen=True)
class StepKernels:
    """One implementation of each step op; attention returns [B, L, H * D] ready for the output projection."""

    name: str
    rms_norm: Callable
    rope: Callable
    swiglu: Callable
    attention: Callable
    confidence: Callable
    commit: Callable


def _attention_reference(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale):
    b, length, heads, dim = q.shape
    out = K["attention"].canvas_attention_reference(
        q.transpose(1, 2), k_ctx, v_ctx, ctx_len, k_new.transpose(1, 2), v_new.transpose(1, 2), new_len, scale
    )
    return out.transpose(1, 2).reshape(b, length, heads * dim)


def _attention_triton(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale):
    b, length, heads, dim = q.shape
    out = torch.empty((b, length, heads, dim), dtype=q.dtype, device=q.device)
    K["attention"].canvas_attention_triton(
        q.transpose(1, 2), k_ctx, v_ctx, ctx_len, k_new.transpose(1, 2), v_new.transpose(1, 2), new_len, scale,
        out=out.transpose(1, 2),
    )  # fmt: skip
    return out.view(b, length, heads * dim)


REFERENCE = StepKernels(
    "torch reference",
    K["rmsnorm"].rms_norm_reference,
    K["rope"].rope_reference,
    K["swiglu"].swiglu_reference,
    _attention_reference,
    K["confidence"].confidence_reference,
    K["commit"].commit_confident_reference,
)
TRITON = StepKernels(
    "Triton",
    K["rmsnorm"].rms_norm_triton,
    K["rope"].rope_triton,
    K["swiglu"].swiglu_triton,
    _attention_triton,
    K["confidence"].confidence_triton,
    K["commit"].commit_confident_triton,
)


# ----------------------------------------------------------------------------------------------- model


@dataclass
class Layer:
    ln_attn: torch.Tensor
    qkv: torch.Tensor
    qkv_bias: torch.Tensor
    out: torch.Tensor
    ln_mlp: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        return [self.ln_attn, self.qkv, self.qkv_bias, self.out, self.ln_mlp, self.gate_up, self.down]


class Weights:
    """Random weights of a Qwen2 stack; q/k/v and gate/up are fused into one projection each."""

    def __init__(self, shape: Shape, device: torch.device, dtype: torch.dtype, seed: int = 0) -> None:
        gen = torch.Generator(device=device).manual_seed(seed)

        def rand(*size: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
            return torch.randn(size, generator=gen, device=device, dtype=dtype) * std + mean

        h, i = shape.hidden, shape.intermediate
        self.layers = [
            Layer(
                ln_attn=rand(h, std=0.1, mean=1.0),
                qkv=rand(shape.qkv_width, h),
                qkv_bias=rand(shape.qkv_width),
                out=rand(h, shape.heads * shape.head_dim),
                ln_mlp=rand(h, std=0.1, mean=1.0),
                gate_up=rand(2 * i, h),
                down=rand(h, i),
            )
            for _ in range(shape.layers)
        ]
        self.final_norm = rand(h, std=0.1, mean=1.0)
        self.embed = rand(shape.vocab, h)
        self.lm_head = self.embed if shape.tied else rand(shape.vocab, h)

    def bytes_read_per_step(self) -> int:
        """Every layer weight, the final norm and the LM head; the embedding is only gathered (unless tied)."""
        tensors = [t for layer in self.layers for t in layer.tensors()] + [self.final_norm, self.lm_head]
        return sum(t.numel() * t.element_size() for t in tensors)


class KVCache:
    def __init__(self, shape: Shape, batch: int, capacity: int, device: torch.device, dtype: torch.dtype):
        size = (batch, shape.kv_heads, capacity, shape.head_dim)
        self.k = [torch.zeros(size, device=device, dtype=dtype) for _ in range(shape.layers)]
        self.v = [torch.zeros(size, device=device, dtype=dtype) for _ in range(shape.layers)]


def rope_table(shape: Shape, positions: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / ROPE_THETA ** (torch.arange(0, shape.head_dim, 2, dtype=torch.float64) / shape.head_dim)
    angles = torch.arange(positions, dtype=torch.float64)[:, None] * inv[None, :]
    return angles.cos().float().to(device), angles.sin().float().to(device)


# attend(layer, q [B, L, H, D], k [B, L, Hkv, D], v) -> [B, L, H * D]
Attend = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def forward(
    shape: Shape, w: Weights, kern: StepKernels, ids: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
    attend: Attend,
) -> torch.Tensor:  # fmt: skip
    """The layer stack over the tokens `ids` [B, L]; returns the final-normed hidden states [B, L, hidden]."""
    b, length = ids.shape
    n_q, n_kv, i = shape.heads, shape.kv_heads, shape.intermediate
    x = F.embedding(ids, w.embed)
    residual = None
    for index, layer in enumerate(w.layers):
        normed, residual = kern.rms_norm(x, layer.ln_attn, EPS, residual)
        qkv = F.linear(normed, layer.qkv, layer.qkv_bias).view(b, length, n_q + 2 * n_kv, shape.head_dim)
        q, k, v = qkv[:, :, :n_q], qkv[:, :, n_q : n_q + n_kv], qkv[:, :, n_q + n_kv :]
        kern.rope(q, k, cos, sin)
        x = F.linear(attend(index, q, k, v), layer.out)
        normed, residual = kern.rms_norm(x, layer.ln_mlp, EPS, residual)
        gate_up = F.linear(normed, layer.gate_up)
        x = F.linear(kern.swiglu(gate_up[..., :i], gate_up[..., i:]), layer.down)
    return kern.rms_norm(x, w.final_norm, EPS, residual)[0]


def sdpa_attend(shape: Shape, cache: KVCache, causal: bool) -> Attend:
    """Prefill: the context attends to itself (torch SDPA) and its keys/values fill the cache from position 0."""

    def attend(index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, length = q.shape[:2]
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        cache.k[index][:, :, :length].copy_(k)
        cache.v[index][:, :, :length].copy_(v)
        group = shape.heads // shape.kv_heads
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.repeat_interleave(group, 1), v.repeat_interleave(group, 1), is_causal=causal
        )
        return out.transpose(1, 2).reshape(b, length, -1)

    return attend


class Model:
    """Weights plus the buffers every path shares: context cache, RoPE table, filler ids."""

    def __init__(self, shape: Shape, work: Workload, device: torch.device, dtype: torch.dtype, batch: int = 1):
        self.shape, self.work, self.device, self.batch = shape, work, device, batch
        self.weights = Weights(shape, device, dtype)
        # Room for the timed AR steps beyond the 64 generated tokens.
        self.cache = KVCache(shape, batch, work.context + AR_HEADROOM * work.ar_tokens, device, dtype)
        self.cos, self.sin = rope_table(shape, work.context + AR_HEADROOM * work.ar_tokens, device)
        self.scale = 1.0 / math.sqrt(shape.head_dim)
        self.filler_ids = torch.tensor([shape.vocab - 2, shape.vocab - 3], device=device)
        self.mask_id = shape.vocab - 1
        gen = torch.Generator().manual_seed(1)
        self.context_ids = torch.randint(0, shape.vocab - 3, (batch, work.context), generator=gen).to(device)
        # The prefix sits at [0, P), the suffix after the canvas gap.
        after_gap = work.prefix + work.canvas
        self.context_positions = torch.cat(
            [torch.arange(work.prefix), torch.arange(after_gap, after_gap + work.suffix)]
        ).to(device)

    def rope_at(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos = self.cos.index_select(0, positions)[None].expand(self.batch, -1, -1)
        sin = self.sin.index_select(0, positions)[None].expand(self.batch, -1, -1)
        return cos, sin

    def prefill_infill_context(self, kern: StepKernels) -> None:
        """Prefix and suffix into the cache, bidirectionally, as the diffusion model reads the context."""
        cos, sin = self.rope_at(self.context_positions)
        forward(self.shape, self.weights, kern, self.context_ids, cos, sin, sdpa_attend(self.shape, self.cache, False))

    def prefill_prompt(self, kern: StepKernels) -> torch.Tensor:
        """Causal prefill of the fill-in-the-middle prompt; returns the first generated token [B]."""
        cos, sin = self.rope_at(torch.arange(self.work.context, device=self.device))
        hidden = forward(
            self.shape, self.weights, kern, self.context_ids, cos, sin, sdpa_attend(self.shape, self.cache, True)
        )
        return F.linear(hidden[:, -1], self.weights.lm_head).argmax(-1)


class Canvas:
    """Static buffers of one canvas bucket, updated in place by each step so a CUDA graph can replay it."""

    def __init__(self, model: Model, size: int, steps: int) -> None:
        b, dev, w = model.batch, model.device, model.work
        self.model = model
        self.ids = torch.full((b, size), model.mask_id, device=dev)
        self.masked = torch.ones((b, size), dtype=torch.bool, device=dev)
        self.committed_filler = torch.zeros((b, size), dtype=torch.bool, device=dev)
        self.threshold = torch.full((b,), THRESHOLD, device=dev)
        self.filler_rule = torch.ones((b,), dtype=torch.bool, device=dev)
        self.min_commits = torch.full((b,), -(-size // steps), device=dev)
        self.ctx_len = torch.full((b,), w.context, device=dev)
        self.new_len = torch.full((b,), size, device=dev)
        self.cos, self.sin = model.rope_at(torch.arange(w.prefix, w.prefix + size, device=dev))

    def reset(self) -> None:
        self.ids.fill_(self.model.mask_id)
        self.masked.fill_(True)
        self.committed_filler.fill_(False)

    def logits(self, kern: StepKernels) -> torch.Tensor:
        """The model's logits for the canvas [B, C, V], attending to the cached context and the canvas itself."""
        m = self.model
        cache = m.cache

        def attend(index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return kern.attention(q, cache.k[index], cache.v[index], self.ctx_len, k, v, self.new_len, m.scale)

        hidden = forward(m.shape, m.weights, kern, self.ids, self.cos, self.sin, attend)
        return F.linear(hidden, m.weights.lm_head)

    def step(self, kern: StepKernels) -> None:
        """One denoising step: forward the canvas, confidence over the vocabulary, commit, update in place."""
        m, s = self.model, self.model.shape
        logits = self.logits(kern)
        b, size = self.ids.shape
        p_best, id_best, p_nf, id_nf = (
            t.view(b, size) for t in kern.confidence(logits.view(b * size, s.vocab), m.filler_ids)
        )
        best_is_filler = (id_best[..., None] == m.filler_ids).any(-1)
        commit, token, _ = kern.commit(
            p_best, id_best, p_nf, id_nf, best_is_filler, self.masked, self.committed_filler,
            self.threshold, self.filler_rule, min_commits=self.min_commits,
        )  # fmt: skip
        self.ids.copy_(torch.where(commit, token, self.ids))
        self.committed_filler.logical_or_(commit & (token[..., None] == m.filler_ids).any(-1))
        self.masked.logical_and_(~commit)


class Decoder:
    """Autoregressive decoding: one token per step over the causal KV cache, static buffers for a CUDA graph."""

    def __init__(self, model: Model) -> None:
        b, dev = model.batch, model.device
        self.model = model
        self.token = torch.zeros((b, 1), dtype=torch.long, device=dev)
        self.length = torch.zeros((b,), dtype=torch.long, device=dev)
        self.generated = torch.zeros((b, model.work.ar_tokens), dtype=torch.long, device=dev)
        self.index = torch.zeros((1,), dtype=torch.long, device=dev)
        self.one = torch.ones((b,), dtype=torch.long, device=dev)

    def start(self, first_token: torch.Tensor) -> None:
        self.token.copy_(first_token.view(-1, 1))
        self.length.fill_(self.model.work.context)
        self.index.zero_()

    def step(self, kern: StepKernels) -> None:
        m, s = self.model, self.model.shape
        cache = m.cache
        # Every row of the batch has the same length; the first one places the new key in the cache.
        position = self.length[:1]

        def attend(index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            out = kern.attention(q, cache.k[index], cache.v[index], self.length, k, v, self.one, m.scale)
            cache.k[index].index_copy_(2, position, k.transpose(1, 2))
            cache.v[index].index_copy_(2, position, v.transpose(1, 2))
            return out

        cos, sin = m.rope_at(position)
        hidden = forward(s, m.weights, kern, self.token, cos, sin, attend)
        nxt = F.linear(hidden[:, -1], m.weights.lm_head).argmax(-1)
        self.token.copy_(nxt[:, None])
        self.generated.index_copy_(1, self.index, nxt[:, None])
        self.length += 1
        self.index += 1


# ----------------------------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 2) -> float:
    """Median wall time of fn in milliseconds (CUDA events on the GPU)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def capture_graph(fn: Callable[[], None]) -> Callable[[], None]:
    """Warm fn up on a side stream (Triton compiles there), capture one call, return the replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def copy_bandwidth(device: torch.device, megabytes: int) -> float:
    """Bytes moved (read + write) per second by a large device-to-device copy."""
    src = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, reps=10)
    return 2 * src.numel() / (ms / 1e3)


# ----------------------------------------------------------------------------------------------- checks


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


CheckRow = tuple[str, str, str, bool]


@contextlib.contextmanager
def reported(rows: list[CheckRow], kernel: str, where: str) -> Iterator[None]:
    """Turn an exception into a failed row: one broken kernel must not cost the rest of a scarce GPU run."""
    try:
        yield
    except Exception as err:  # reported in the table and on stderr
        traceback.print_exc()
        rows.append((kernel, where, f"{type(err).__name__}: {err}"[:160], False))


def check_shape(
    s: Shape, work: Workload, device: torch.device, dtype: torch.dtype, kern: StepKernels
) -> list[CheckRow]:
    """The kernels of `kern` at the shapes of `s` on random data against the float32 reference."""
    rows: list[CheckRow] = []
    gen = torch.Generator(device=device).manual_seed(2)
    c, n_q, n_kv, d = work.canvas, s.heads, s.kv_heads, s.head_dim

    def randn(*size: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(size, generator=gen, device=device) * scale).to(dtype)

    def add(kernel: str, where: str, *pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
        err = max(relative_error(o, r) for o, r in pairs)
        rows.append((kernel, where, f"{err:.1e}", err < RELATIVE_ERROR_LIMIT))

    where = f"{s.name}: [{c}, {s.hidden}]"
    with reported(rows, "rms_norm + residual", where):
        x, res, weight = randn(c, s.hidden), randn(c, s.hidden), randn(s.hidden, scale=0.1) + 1
        normed, hidden = kern.rms_norm(x, weight, EPS, res)
        ref_normed, ref_hidden = REFERENCE.rms_norm(x.float(), weight.float(), EPS, res.float())
        add("rms_norm + residual", where, (normed, ref_normed), (hidden, ref_hidden))

    where = f"{s.name}: q [1, {c}, {n_q}, {d}]"
    with reported(rows, "rope (q, k in place)", where):
        qkv = randn(1, c, n_q + 2 * n_kv, d)
        ref_qkv = qkv.float()
        cos, sin = (t[None, work.prefix : work.prefix + c] for t in rope_table(s, work.context + c, device))
        kern.rope(qkv[:, :, :n_q], qkv[:, :, n_q : n_q + n_kv], cos, sin)
        REFERENCE.rope(ref_qkv[:, :, :n_q], ref_qkv[:, :, n_q : n_q + n_kv], cos, sin)
        add("rope (q, k in place)", where, (qkv, ref_qkv))

    where = f"{s.name}: [{c}, {s.intermediate}]"
    with reported(rows, "swiglu", where):
        gate_up = randn(c, 2 * s.intermediate, scale=2.0)
        gate, up = gate_up[:, : s.intermediate], gate_up[:, s.intermediate :]
        add("swiglu", where, (kern.swiglu(gate, up), REFERENCE.swiglu(gate.float(), up.float())))

    # (valid context per row, cache capacity, canvas): two ragged rows at the bench context, then 32k.
    long = work.long_context
    cases = [((work.context, work.context * 2 // 3), work.context, c), ((long,), long, 1), ((long,), long, c)]
    for batch_lens, capacity, size in cases + [((long,), long, 256)]:
        where = f"{s.name}: canvas {size}, context {list(batch_lens)}"
        with reported(rows, "canvas attention", where):
            b = len(batch_lens)
            q, k_new, v_new = randn(b, size, n_q, d), randn(b, size, n_kv, d), randn(b, size, n_kv, d)
            k_ctx, v_ctx = randn(b, n_kv, capacity, d), randn(b, n_kv, capacity, d)
            ctx_len = torch.tensor(batch_lens, device=device)
            new_len = torch.tensor([size] + [max(1, size - 5)] * (b - 1), device=device)
            scale = 1.0 / math.sqrt(d)
            out = kern.attention(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale)
            ref = REFERENCE.attention(
                q.float(), k_ctx.float(), v_ctx.float(), ctx_len, k_new.float(), v_new.float(), new_len, scale
            )
            add("canvas attention", where, (out, ref))

    where = f"{s.name}: [{c}, {s.vocab}]"
    with reported(rows, "confidence", where):
        logits = randn(c, s.vocab, scale=3.0)
        fillers = torch.tensor([s.vocab - 2, s.vocab - 3], device=device)
        got = kern.confidence(logits, fillers)
        ref = REFERENCE.confidence(logits.float(), fillers)
        # bf16 logits tie often: an id is right when its logit is the maximal one.
        lf = logits.float()
        no_filler = lf.index_fill(-1, fillers, float("-inf"))
        ids_ok = torch.equal(lf.gather(1, got[1][:, None])[:, 0], lf.max(-1).values) and torch.equal(
            no_filler.gather(1, got[3][:, None])[:, 0], no_filler.max(-1).values
        )
        err = max(relative_error(got[0], ref[0]), relative_error(got[2], ref[2]))
        ok = ids_ok and err < RELATIVE_ERROR_LIMIT
        rows.append(("confidence", where, f"{err:.1e}, ids {'ok' if ids_ok else 'WRONG'}", ok))
    return rows


def check_commit(device: torch.device, kern: StepKernels) -> list[CheckRow]:
    """Commit selection must match the reference exactly."""
    gen = torch.Generator(device=device).manual_seed(3)
    batch, size = 8, 256
    p_best = torch.rand(batch, size, generator=gen, device=device)
    args = (
        p_best, torch.randint(0, 1000, (batch, size), device=device),
        p_best * torch.rand(batch, size, generator=gen, device=device),
        torch.randint(0, 1000, (batch, size), device=device),
        torch.rand(batch, size, generator=gen, device=device) < 0.3,
        torch.rand(batch, size, generator=gen, device=device) < 0.7,
        torch.zeros(batch, size, dtype=torch.bool, device=device),
        torch.full((batch,), 0.8, device=device), torch.ones(batch, dtype=torch.bool, device=device),
    )  # fmt: skip
    min_commits = torch.arange(batch, device=device)
    got = kern.commit(*args, min_commits=min_commits)
    ref = REFERENCE.commit(*args, min_commits=min_commits)
    same = all(torch.equal(g, r) for g, r in zip(got, ref))
    return [("commit selection", f"[{batch}, {size}], min_commits 0..{batch - 1}", "exact" if same else "DIFFERS", same)]


def time_kernels(
    shape: Shape, work: Workload, device: torch.device, dtype: torch.dtype, fast: StepKernels, reps: int
) -> list[list[str]]:
    """Each op at the canvas-step shapes of `shape`: reference and `fast` times in microseconds."""
    c, n_q, n_kv, d = work.canvas, shape.heads, shape.kv_heads, shape.head_dim

    def randn(*size: int) -> torch.Tensor:
        return torch.randn(size, device=device).to(dtype)

    x, res, weight = randn(c, shape.hidden), randn(c, shape.hidden), randn(shape.hidden)
    qkv = randn(1, c, n_q + 2 * n_kv, d)
    cos, sin = (t[None, work.prefix : work.prefix + c] for t in rope_table(shape, work.context + c, device))
    gate_up = randn(c, 2 * shape.intermediate)
    gate, up = gate_up[:, : shape.intermediate], gate_up[:, shape.intermediate :]
    capacity = work.context + AR_HEADROOM * work.ar_tokens
    k_ctx, v_ctx = randn(1, n_kv, capacity, d), randn(1, n_kv, capacity, d)
    ctx_len, new_len = torch.tensor([work.context], device=device), torch.tensor([c], device=device)
    q, k_new, v_new = qkv[:, :, :n_q], qkv[:, :, n_q : n_q + n_kv], qkv[:, :, n_q + n_kv :]
    logits = randn(c, shape.vocab)
    fillers = torch.tensor([shape.vocab - 2, shape.vocab - 3], device=device)
    p = torch.rand(1, c, device=device)
    flags = torch.rand(1, c, device=device) < 0.5
    commit_args = (p, torch.zeros(1, c, dtype=torch.long, device=device), p / 2,
                   torch.zeros(1, c, dtype=torch.long, device=device), flags, ~flags, flags & False,
                   torch.full((1,), THRESHOLD, device=device), torch.ones(1, dtype=torch.bool, device=device))  # fmt: skip
    ops: list[tuple[str, str, Callable[[StepKernels], object]]] = [
        ("rms_norm + residual", f"[{c}, {shape.hidden}]", lambda k: k.rms_norm(x, weight, EPS, res)),
        ("rope (q, k in place)", f"[1, {c}, {n_q}+{n_kv}, {d}]",
         lambda k: k.rope(qkv[:, :, :n_q], qkv[:, :, n_q : n_q + n_kv], cos, sin)),
        ("swiglu", f"[{c}, {shape.intermediate}]", lambda k: k.swiglu(gate, up)),
        ("canvas attention", f"canvas {c}, context {work.context}",
         lambda k: k.attention(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, 0.1)),
        ("confidence", f"[{c}, {shape.vocab}]", lambda k: k.confidence(logits, fillers)),
        ("commit selection", f"[1, {c}]", lambda k: k.commit(*commit_args)),
    ]  # fmt: skip
    rows = []
    for op, where, call in ops:
        ref_us = time_ms(lambda call=call: call(REFERENCE), device, reps) * 1e3
        fast_us = time_ms(lambda call=call: call(fast), device, reps) * 1e3
        rows.append([op, f"{shape.name}: {where}", f"{ref_us:.1f}", f"{fast_us:.1f}", f"{ref_us / fast_us:.1f}×"])
    if fast is TRITON:
        one_split = K["attention"].canvas_attention_triton
        qt, kt, vt = q.transpose(1, 2), k_new.transpose(1, 2), v_new.transpose(1, 2)
        us = time_ms(lambda: one_split(qt, k_ctx, v_ctx, ctx_len, kt, vt, new_len, 0.1, num_splits=1), device, reps)
        rows.append(["canvas attention, one split", f"{shape.name}: canvas {c}, context {work.context}",
                     "", f"{us * 1e3:.1f}", ""])  # fmt: skip
    return rows


# ----------------------------------------------------------------------------------------------- measurements


@dataclass
class Figures:
    shape: Shape
    weight_bytes: int
    floor_ms: float
    step_ms: dict[str, float]
    prefill_ms: float
    infill_ms: dict[tuple[int, bool], float]
    ar_step_ms: float
    ar_ms: dict[bool, float]
    infill_complete: bool
    logits_error: float


def time_infill(
    model: Model, steps: int, fast: StepKernels, reps: int, step_ms: dict[str, float] | None = None
) -> tuple[float, float, bool]:
    """(cached ms, with-prefill ms, every position committed) of an infill in `steps` steps; fills step_ms."""
    device, cuda = model.device, model.device.type == "cuda"
    canvas = Canvas(model, model.work.canvas, steps)
    if step_ms is not None:
        step_ms["eager"] = time_ms(lambda: canvas.step(REFERENCE), device, reps)
        step_ms["fast"] = time_ms(lambda: canvas.step(fast), device, reps)
    replay = capture_graph(lambda: canvas.step(fast)) if cuda else (lambda: canvas.step(fast))
    if step_ms is not None and cuda:
        step_ms["graph"] = time_ms(replay, device, reps)

    def infill() -> None:
        canvas.reset()
        for _ in range(steps):
            replay()

    def infill_with_prefill() -> None:
        model.prefill_infill_context(fast)
        infill()

    cached = time_ms(infill, device, reps)
    with_prefill = time_ms(infill_with_prefill, device, max(3, reps // 2))
    infill()
    return cached, with_prefill, not bool(canvas.masked.any())


def time_autoregressive(model: Model, fast: StepKernels, reps: int) -> tuple[float, float, float]:
    """(one step, N tokens with the prompt cached, N tokens with causal prefill) in ms, graph-replayed on CUDA."""
    device, cuda, n = model.device, model.device.type == "cuda", model.work.ar_tokens
    decoder = Decoder(model)
    first = model.prefill_prompt(fast)
    decoder.start(first)
    decode = capture_graph(lambda: decoder.step(fast)) if cuda else (lambda: decoder.step(fast))
    decoder.start(first)
    step = time_ms(decode, device, min(reps, (AR_HEADROOM - 1) * n - 4))

    def generate(first: torch.Tensor = first) -> None:
        decoder.start(first)
        for _ in range(n):
            decode()

    cached = time_ms(generate, device, max(3, reps // 2))
    with_prefill = time_ms(lambda: generate(model.prefill_prompt(fast)), device, max(3, reps // 2))
    return step, cached, with_prefill


def measure(
    shape: Shape, work: Workload, device: torch.device, dtype: torch.dtype, bandwidth: float, reps: int,
    fast: StepKernels,
) -> Figures:  # fmt: skip
    """Step, infill and autoregressive timings of one model shape; `fast` is the kernel set under test."""
    model = Model(shape, work, device, dtype)
    weight_bytes = model.weights.bytes_read_per_step()
    model.prefill_infill_context(fast)
    probe = Canvas(model, work.canvas, 8)
    probe.ids.copy_(torch.randint(0, shape.vocab, probe.ids.shape, device=device))
    logits_error = relative_error(probe.logits(fast), probe.logits(REFERENCE))
    step_ms: dict[str, float] = {}
    infill_ms: dict[tuple[int, bool], float] = {}
    complete = True
    for steps in (8, 16):
        cached, with_prefill, done = time_infill(model, steps, fast, reps, step_ms if steps == 8 else None)
        infill_ms[(steps, False)], infill_ms[(steps, True)] = cached, with_prefill
        complete = complete and done
    prefill_ms = time_ms(lambda: model.prefill_infill_context(fast), device, max(3, reps // 2))
    ar_step, ar_cached, ar_prefill = time_autoregressive(model, fast, reps)
    return Figures(
        shape, weight_bytes, weight_bytes / bandwidth * 1e3, step_ms, prefill_ms, infill_ms, ar_step,
        {False: ar_cached, True: ar_prefill}, complete, logits_error,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- report


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def timing_table(figures: list[Figures], work: Workload, cuda: bool, fast_name: str) -> str:
    def ms(value: float | None, floor: float | None = None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.2f} ms" + (f" ({value / floor:.2f}× floor)" if floor else "")

    def tokens(value: float) -> str:
        return f"{value:.1f} ms, {work.canvas / (value / 1e3):,.0f} tok/s"

    n = work.canvas
    spec = [
        ("weights read per step", lambda f: f"{f.weight_bytes / 1e9:.2f} GB"),
        ("weight-read floor per step", lambda f: ms(f.floor_ms)),
        ("canvas step, eager torch (reference kernels)", lambda f: ms(f.step_ms["eager"], f.floor_ms)),
        (f"canvas step, {fast_name}", lambda f: ms(f.step_ms["fast"], f.floor_ms)),
        (f"canvas step, {fast_name} + CUDA graph", lambda f: ms(f.step_ms.get("graph"), f.floor_ms)),
        (f"context prefill ({work.context:,} tokens, bidirectional)", lambda f: ms(f.prefill_ms)),
        (f"{n}-token infill, 8 steps, context cached", lambda f: tokens(f.infill_ms[(8, False)])),
        (f"{n}-token infill, 16 steps, context cached", lambda f: tokens(f.infill_ms[(16, False)])),
        (f"{n}-token infill, 8 steps, with prefill", lambda f: tokens(f.infill_ms[(8, True)])),
        (f"{n}-token infill, 16 steps, with prefill", lambda f: tokens(f.infill_ms[(16, True)])),
        ("AR step" + (" (CUDA graph)" if cuda else ""), lambda f: ms(f.ar_step_ms, f.floor_ms)),
        (f"AR {n} tokens, context cached", lambda f: tokens(f.ar_ms[False])),
        (f"AR {n} tokens, with causal prefill", lambda f: tokens(f.ar_ms[True])),
        ("AR time ÷ 8-step infill time, cached", lambda f: f"{f.ar_ms[False] / f.infill_ms[(8, False)]:.1f}×"),
        ("AR time ÷ 8-step infill time, with prefill", lambda f: f"{f.ar_ms[True] / f.infill_ms[(8, True)]:.1f}×"),
        ("infill committed every position", lambda f: "yes" if f.infill_complete else "NO"),
        (f"canvas logits, {fast_name} vs reference kernels", lambda f: f"{f.logits_error:.1e} relative"),
    ]
    header = ["measure"] + [f.shape.name for f in figures]
    return markdown_table(header, [[label] + [cell(f) for f in figures] for label, cell in spec])


def target_table(figures: list[Figures], card: str) -> str:
    by_name = {f.shape.name: f for f in figures}
    rows: list[list[str]] = []

    def target(label: str, measured: float | None, limit: float, unit: str, at_least: bool = False) -> None:
        if measured is None:
            rows.append([label, "n/a", "not measured"])
            return
        ok = measured >= limit if at_least else measured <= limit
        sign = "≥" if at_least else "≤"
        rows.append([label, f"{measured:.2f}{unit} ({sign} {limit:g}{unit})", "pass" if ok else "FAIL"])

    big, small = by_name.get(QWEN_7B.name), by_name.get(QWEN_05B.name)
    if big:
        graph = big.step_ms.get("graph")
        target("7B step / weight-read floor", graph / big.floor_ms if graph else None, TARGET_STEP_OVER_FLOOR_7B, "×")
        target("7B 64-token infill, 8 steps, cached", big.infill_ms[(8, False)], TARGET_INFILL_CACHED_7B_MS, " ms")
        target("7B 64-token infill, 8 steps, with prefill", big.infill_ms[(8, True)], TARGET_INFILL_PREFILL_7B_MS, " ms")
        speedup = big.ar_ms[False] / big.infill_ms[(8, False)]
        target("7B infill vs AR (64 tokens, cached)", speedup, TARGET_SPEEDUP_OVER_AR, "×", at_least=True)
    if small:
        target("0.5B step (CUDA graph)", small.step_ms.get("graph"), TARGET_STEP_05B_MS, " ms")
    if not rows:
        return "(no target applies to these shapes)"
    return f"Targets are set for an H200; this run: {card}.\n\n" + markdown_table(["target", "measured", "result"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny shapes (for a CPU run that proves the script)")
    parser.add_argument("--models", default="0.5b,7b", help="comma-separated: 0.5b, 7b")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per figure")
    parser.add_argument("--out", type=Path, help="also write the tables as markdown to this file")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_step.py: no CUDA device here; use --device cpu --small to check the script.", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.small:
        print("gpu_step.py: real shapes on the CPU would take hours; add --small.", file=sys.stderr)
        return 2
    presets = {"0.5b": (QWEN_05B, TINY_05B), "7b": (QWEN_7B, TINY_7B)}
    wanted = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in presets]
    if unknown or not wanted:
        print(f"gpu_step.py: unknown model {', '.join(unknown) or '(none)'}; choose from 0.5b, 7b.", file=sys.stderr)
        return 2

    if args.reps is not None and args.reps < 1:
        print("gpu_step.py: --reps must be at least 1.", file=sys.stderr)
        return 2
    if args.out and not args.out.parent.is_dir():
        print(f"gpu_step.py: cannot write {args.out}: no folder {args.out.parent}.", file=sys.stderr)
        return 2

    started = time.perf_counter()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    # Triton runs on the GPU, or on the CPU under its interpreter (float32 there: no bf16 in numpy).
    fast = TRITON if cuda or interpreted else REFERENCE
    dtype = torch.bfloat16 if cuda else torch.float32
    work = SMALL if args.small else REAL
    shapes = [presets[m][1 if args.small else 0] for m in wanted]
    reps = args.reps or (20 if cuda else 3)
    if not cuda:
        # The CPU run proves the script; one thread keeps its figures steady on a shared machine.
        torch.set_num_threads(1)
    card = torch.cuda.get_device_name(device) if cuda else "CPU, 1 thread"
    lines = [
        f"# Denoising step on {card}",
        "",
        f"torch {torch.__version__}, triton {_triton_version()}, {dtype}, batch 1, context {work.context:,} "
        f"({work.prefix} prefix + {work.suffix} suffix), canvas {work.canvas}; fast kernels: {fast.name}"
        + (" (interpreted)" if interpreted and not cuda else ""),
    ]
    print("\n".join(lines), flush=True)

    checks = [row for shape in shapes for row in check_shape(shape, work, device, dtype, fast)]
    with reported(checks, "commit selection", "[8, 256]"):
        checks += check_commit(device, fast)
    check_md = markdown_table(
        ["kernel", "shape", "‖out − ref‖ / ‖ref‖", "ok"], [[k, s, e, "ok" if ok else "FAIL"] for k, s, e, ok in checks]
    )
    print(f"\n## Kernels against the float32 reference (limit {RELATIVE_ERROR_LIMIT:g})\n\n{check_md}", flush=True)

    kernel_rows: list[list[str]] = []
    failures: list[CheckRow] = []
    for shape in shapes:
        with reported(failures, "kernel times", shape.name):
            kernel_rows += time_kernels(shape, work, device, dtype, fast, reps)
    kernels_md = markdown_table(["op", "shape", "reference µs", f"{fast.name} µs", "speed-up"], kernel_rows)
    print(f"\n## Kernel times (eager launches)\n\n{kernels_md}", flush=True)

    bandwidth = copy_bandwidth(device, 2048 if cuda else 64)
    print(f"\ncopy bandwidth (read + write): {bandwidth / 1e9:,.0f} GB/s", flush=True)
    figures = []
    for shape in shapes:
        t0 = time.perf_counter()
        with reported(failures, "step timings", shape.name):
            figures.append(measure(shape, work, device, dtype, bandwidth, reps, fast))
            # Printed at once as well: a run cut short by a time limit keeps what it measured.
            print(f"\n{timing_table(figures[-1:], work, cuda, fast.name)}", flush=True)
        if cuda:
            torch.cuda.empty_cache()
        print(f"measured {shape.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    timings_md = timing_table(figures, work, cuda, fast.name)
    targets_md = target_table(figures, card) if not args.small else "(targets apply to the real shapes on a GPU)"
    print(f"\n## Step timings\n\n{timings_md}\n\n## Targets\n\n{targets_md}", flush=True)
    for what, name, error, _ in failures:
        print(f"FAILED {what} for {name}: {error}", flush=True)
    elapsed = f"\nwhole run: {time.perf_counter() - started:.0f} s"
    print(elapsed)
    if args.out:
        write_report(
            args.out,
            "\n".join(lines)
            + f"\n\ncopy bandwidth (read + write): {bandwidth / 1e9:,.0f} GB/s\n\n"
            + f"## Kernels against the float32 reference\n\n{check_md}\n\n"
            + f"## Kernel times (eager launches)\n\n{kernels_md}\n\n## Step timings\n\n{timings_md}\n\n"
            + f"## Targets\n\n{targets_md}\n{elapsed}\n"
        )
    return 0 if all(ok for *_, ok in checks) and not failures else 1


def write_report(path: Path, text: str) -> None:
    """Write the markdown report; a failure costs the file, not the printed tables."""
    try:
        path.write_text(text)
    except OSError as err:
        print(f"gpu_step.py: could not write {path}: {err.strerror}.", file=sys.stderr)


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "not installed"
    return triton.__version__


if __name__ == "__main__":
    sys.exit(main())
