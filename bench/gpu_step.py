"""The engine on one GPU: kernel checks at real shapes, then the engine's own step, infill, autoregressive baseline
and HTTP server, against the weight-read floor.

Random weights of the Qwen2.5-0.5B and 7B shapes are built in memory and served by the real `InfillEngine` (and
the real HTTP app with its batcher), with the bundled model's tokenizer: the figures are about speed only.

    python bench/gpu_step.py                        # one H100 / H200, about three minutes
    python bench/gpu_step.py --out bench/gpu/step.md
    python bench/gpu_step.py --device cpu --small   # tiny shapes on the CPU, reference kernels: proves it runs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.autoregressive import AutoregressiveDecoder
from mercury_lsp.engine.checkpoint import LoadedModel, load_vocabulary
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.model import ModelConfig, Transformer, rope_inv_freq
from mercury_lsp.kernels import attention, commit, confidence, rmsnorm, rope, swiglu
from mercury_lsp.models import BUNDLED_MODEL

from plots import bar_chart
from workload import SOURCE_FILE, percentile

EPS = 1e-6
RELATIVE_ERROR_LIMIT = 1e-2
PREFIX_TOKENS, SUFFIX_TOKENS, CANVAS = 768, 256, 64

# Targets of issue 11, set for an H200.
TARGET_STEP_OVER_FLOOR_7B = 1.25
TARGET_HTTP_7B_MS = 45.0
TARGET_ENGINE_7B_MS = 40.0
TARGET_PREFILL_7B_MS = 60.0
TARGET_SPEEDUP_OVER_AR = 8.0
TARGET_STEP_05B_MS = 1.0
TARGET_CONCURRENCY_GAIN = 8.0


def qwen(name: str, hidden: int, layers: int, heads: int, kv_heads: int, head_dim: int, intermediate: int,
         vocab: int, tied: bool) -> tuple[str, ModelConfig]:
    return name, ModelConfig(vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, rope_theta=1e6,
                             max_position_embeddings=32768, tie_embeddings=tied, qkv_bias=True)


SHAPES = {
    "0.5b": qwen("Qwen2.5-0.5B", 896, 24, 14, 2, 64, 4864, 151936, tied=True),
    "7b": qwen("Qwen2.5-7B", 3584, 28, 28, 4, 128, 18944, 152064, tied=False),
}
SMALL_SHAPES = {  # the same head layouts, tiny; the vocabulary just past the bundled tokenizer's 8,192
    "0.5b": qwen("tiny (0.5B-like GQA 7:1)", 112, 2, 7, 1, 16, 256, 8256, tied=True),
    "7b": qwen("tiny (7B-like GQA 7:1, untied)", 224, 3, 14, 2, 16, 512, 8300, tied=False),
}


# ----------------------------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 2) -> float:
    """Median wall time of fn in milliseconds (synchronized around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        synchronize(device)
        started = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def copy_bandwidth(device: torch.device, megabytes: int) -> float:
    """Bytes moved (read + write) per second by a large device-to-device copy."""
    src = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), device, reps=10)
    return 2 * src.numel() / (ms / 1e3)


# ----------------------------------------------------------------------------------------------- kernel checks

CheckRow = tuple[str, str, str, bool]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


@contextlib.contextmanager
def reported(rows: list[CheckRow], what: str, where: str) -> Iterator[None]:
    """Turn an exception into a failed row: one broken part must not cost the rest of a scarce GPU run."""
    try:
        yield
    except Exception as err:  # reported in the table and on stderr
        traceback.print_exc()
        rows.append((what, where, f"{type(err).__name__}: {err}"[:160], False))


def check_kernels(name: str, c: ModelConfig, device: torch.device, dtype: torch.dtype, fast: bool,
                  long_context: int) -> list[CheckRow]:
    """Each Triton kernel (on CUDA; the reference elsewhere) at the shapes of `c` against the float32 reference."""
    rows: list[CheckRow] = []
    gen = torch.Generator(device=device).manual_seed(2)
    n, q_heads, kv_heads, d = CANVAS, c.num_heads, c.num_kv_heads, c.head_dim

    def randn(*size: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(size, generator=gen, device=device) * scale).to(dtype)

    def add(kernel: str, where: str, *pairs: tuple[torch.Tensor, torch.Tensor]) -> None:
        err = max(relative_error(o, r) for o, r in pairs)
        rows.append((kernel, where, f"{err:.1e}", err < RELATIVE_ERROR_LIMIT))

    pick = (lambda triton_fn, ref_fn: triton_fn) if fast else (lambda triton_fn, ref_fn: ref_fn)
    where = f"{name}: [{n}, {c.hidden_size}]"
    with reported(rows, "rms_norm + residual", where):
        x, res, weight = randn(n, c.hidden_size), randn(n, c.hidden_size), randn(c.hidden_size, scale=0.1) + 1
        got = pick(rmsnorm.rms_norm_triton, rmsnorm.rms_norm_reference)(x, weight, EPS, res)
        ref = rmsnorm.rms_norm_reference(x.float(), weight.float(), EPS, res.float())
        add("rms_norm + residual", where, (got[0], ref[0]), (got[1], ref[1]))
    where = f"{name}: q [1, {n}, {q_heads}, {d}]"
    with reported(rows, "rope (q, k in place)", where):
        qkv = randn(1, n, q_heads + 2 * kv_heads, d)
        ref_qkv = qkv.float()
        angles = torch.arange(700, 700 + n, device=device)[:, None] * rope_inv_freq(c).to(device)
        cos, sin = angles.cos()[None], angles.sin()[None]
        pick(rope.rope_triton, rope.rope_reference)(qkv[:, :, :q_heads], qkv[:, :, q_heads : q_heads + kv_heads], cos, sin)
        rope.rope_reference(ref_qkv[:, :, :q_heads], ref_qkv[:, :, q_heads : q_heads + kv_heads], cos, sin)
        add("rope (q, k in place)", where, (qkv, ref_qkv))
    where = f"{name}: [{n}, {c.intermediate_size}]"
    with reported(rows, "swiglu", where):
        gate, up = randn(n, c.intermediate_size, scale=2.0), randn(n, c.intermediate_size, scale=2.0)
        add("swiglu", where, (pick(swiglu.swiglu_triton, swiglu.swiglu_reference)(gate, up),
                              swiglu.swiglu_reference(gate.float(), up.float())))
    context = PREFIX_TOKENS + SUFFIX_TOKENS
    cases = [((context, context * 2 // 3), context, n), ((long_context,), long_context, 1),
             ((long_context,), long_context, n), ((long_context,), long_context, 256)]
    for lengths, capacity, size in cases:
        where = f"{name}: canvas {size}, context {list(lengths)}"
        with reported(rows, "canvas attention", where):
            b = len(lengths)
            q, k_new, v_new = randn(b, q_heads, size, d), randn(b, kv_heads, size, d), randn(b, kv_heads, size, d)
            # The context in slots of a bigger cache, as the engine keeps it: row b reads slot 2b + 1.
            k_ctx, v_ctx = randn(2 * b + 1, kv_heads, capacity, d), randn(2 * b + 1, kv_heads, capacity, d)
            slots = torch.arange(b, device=device) * 2 + 1
            ctx_len = torch.tensor(lengths, device=device)
            new_len = torch.tensor([size] + [max(1, size - 5)] * (b - 1), device=device)
            scale = 1.0 / math.sqrt(d)
            fn = pick(attention.canvas_attention_triton, attention.canvas_attention_reference)
            got = fn(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, scale, ctx_rows=slots)
            ref = attention.canvas_attention_reference(q.float(), k_ctx.float(), v_ctx.float(), ctx_len,
                                                       k_new.float(), v_new.float(), new_len, scale, slots)
            add("canvas attention", where, (got, ref))
    where = f"{name}: [{n}, {c.vocab_size}]"
    with reported(rows, "confidence", where):
        logits = randn(n, c.vocab_size, scale=3.0)
        fillers = torch.tensor([c.vocab_size - 2, c.vocab_size - 3], device=device)
        got = pick(confidence.confidence_triton, confidence.confidence_reference)(logits, fillers)
        ref = confidence.confidence_reference(logits.float(), fillers)
        # bf16 logits tie often: an id is right when its logit is the maximal one.
        lf = logits.float()
        no_filler = lf.index_fill(-1, fillers, float("-inf"))
        ids_ok = torch.equal(lf.gather(1, got[1][:, None])[:, 0], lf.max(-1).values) and torch.equal(
            no_filler.gather(1, got[3][:, None])[:, 0], no_filler.max(-1).values)
        err = max(relative_error(got[0], ref[0]), relative_error(got[2], ref[2]))
        rows.append(("confidence", where, f"{err:.1e}, ids {'ok' if ids_ok else 'WRONG'}",
                     ids_ok and err < RELATIVE_ERROR_LIMIT))
    return rows


def check_commit(device: torch.device, fast: bool) -> list[CheckRow]:
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
    )
    min_commits = torch.arange(batch, device=device)
    fn = commit.commit_confident_triton if fast else commit.commit_confident_reference
    got = fn(*args, min_commits=min_commits)
    ref = commit.commit_confident_reference(*args, min_commits=min_commits)
    same = all(torch.equal(g, r) for g, r in zip(got, ref))
    return [("commit selection", f"[{batch}, {size}], min_commits 0..{batch - 1}", "exact" if same else "DIFFERS",
             same)]


# ----------------------------------------------------------------------------------------------- the engine


def random_model(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """Random weights of `config` in memory, with the bundled model's tokenizer (its ids fit any vocabulary)."""
    with torch.device("meta"):
        model = Transformer(config)
    model = model.to_empty(device=device).to(dtype)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=gen)
    if config.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    model.inv_freq = rope_inv_freq(config).to(device)
    model.eval().requires_grad_(False)
    vocab = load_vocabulary(BUNDLED_MODEL, json.loads((BUNDLED_MODEL / "config.json").read_text()))
    return LoadedModel(model, vocab, "qwen2", "random", device, dtype)


def weight_bytes(model: Transformer) -> int:
    """Bytes a step reads: every layer weight, the final norm and the LM head (the embedding is only gathered)."""
    seen, total = set(), 0
    for name, param in model.named_parameters():
        if name == "embed_tokens.weight" and not model.config.tie_embeddings:
            continue
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel() * param.element_size()
    return total


def holes(loaded: LoadedModel, count: int) -> list[tuple[str, str]]:
    """Cursor positions in a real file with PREFIX_TOKENS before and SUFFIX_TOKENS after."""
    text = SOURCE_FILE.read_text()
    ids = loaded.vocab.encode(text)
    out = []
    for i in range(count):
        cursor = PREFIX_TOKENS + (len(ids) - PREFIX_TOKENS - SUFFIX_TOKENS) * i // max(count, 1)
        prefix = loaded.vocab.decode(ids[cursor - PREFIX_TOKENS : cursor])
        out.append((prefix, loaded.vocab.decode(ids[cursor : cursor + SUFFIX_TOKENS])))
    return out


def eight_steps(prefix: str, suffix: str, **extra: object) -> InfillRequest:
    """A 64-token infill in exactly 8 steps: nothing passes threshold 1.0, so each step commits 1/8 of the canvas."""
    return InfillRequest(prefix=prefix, suffix=suffix, max_tokens=CANVAS, steps=8, threshold=1.0, **extra)


@dataclass
class Figures:
    name: str
    weight_bytes: int
    floor_ms: float
    capture_s: float = 0.0
    captures: int = 0
    step_ms: dict[str, float] = field(default_factory=dict)
    infill_ms: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    ar_ms: dict[str, float] = field(default_factory=dict)
    http: dict[int, dict[str, float]] = field(default_factory=dict)


def measure_engine(loaded: LoadedModel, figures: Figures, reps: int) -> None:
    device = loaded.device
    cases = holes(loaded, reps + 2)
    prefix, suffix = cases[0]
    engines = {"graph": InfillEngine(loaded, EngineSettings(max_batch=16))}
    started = time.perf_counter()
    engines["graph"].warm_up()
    figures.capture_s = time.perf_counter() - started
    figures.captures = engines["graph"].canvas_step.captures
    if device.type == "cuda":
        engines["eager"] = InfillEngine(loaded, EngineSettings(max_batch=16, cuda_graphs=False))
    for kind, engine in engines.items():
        # Steps of a long canvas in flight (threshold 1.0: one forced commit per step), timed one by one.
        jobs = engine.start(InfillRequest(prefix=prefix, suffix=suffix, max_tokens=CANVAS, steps=CANVAS,
                                          threshold=1.0))
        times = []
        while not all(j.done for j in jobs):
            synchronize(device)
            t0 = time.perf_counter()
            engine.step(jobs)  # ends with the status read: a full device round trip
            times.append((time.perf_counter() - t0) * 1e3)
        engine.release(jobs)
        figures.step_ms[kind] = statistics.median(times[2:] or times)
    engine = engines["graph"]
    repeat = eight_steps(prefix, suffix)
    engine.infill(repeat)
    figures.infill_ms["repeat"] = time_ms(lambda: engine.infill(repeat), device, reps)
    figures.steps = engine.infill(repeat).steps
    cold = iter(cases[1:] * 3)
    # Cold: a prefix and suffix the caches never saw, so the whole context is encoded.
    figures.infill_ms["cold"] = time_ms(lambda: engine.infill(eight_steps(*next(cold))), device, reps, warmup=1)
    prompt = engine.tokenize_context(InfillRequest(prefix=prefix, suffix=suffix), CANVAS + 1).prefix_ids
    decoder = AutoregressiveDecoder(loaded.model, len(prompt) + CANVAS + 8)
    results = [decoder.generate(prompt, CANVAS) for _ in range(reps + 1)][1:]
    figures.ar_ms["decode"] = statistics.median(r.decode_ms for r in results)
    figures.ar_ms["with prefill"] = statistics.median(r.prefill_ms + r.decode_ms for r in results)
    del engines, decoder


def measure_http(loaded: LoadedModel, figures: Figures, requests_per_client: int) -> None:
    """The real HTTP app and batcher over the same in-memory model: /v1/infill at concurrency 1 and 16."""
    import aiohttp
    from aiohttp import web

    from mercury_lsp.engine.batcher import Batcher
    from mercury_lsp.engine.metrics import EngineMetrics
    from mercury_lsp.engine.server import ServeConfig, build_app

    async def run() -> None:
        metrics = EngineMetrics()
        config = ServeConfig(model=str(BUNDLED_MODEL), host="127.0.0.1", port=0, max_batch=16, max_queue=256)
        batcher = Batcher(BUNDLED_MODEL, str(loaded.device), metrics, 16, 256, loaded=loaded)
        runner = web.AppRunner(build_app(config, batcher, metrics))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        batcher.start()
        try:
            while batcher.state in ("loading", "warming"):
                await asyncio.sleep(0.05)
            cases = holes(loaded, 16 * requests_per_client)
            async with aiohttp.ClientSession() as session:

                async def client(index: int, count: int, out: list[tuple[float, float, int]]) -> None:
                    for k in range(count):
                        prefix, suffix = cases[(index * count + k) % len(cases)]
                        body = {"prefix": prefix, "suffix": suffix, "max_tokens": CANVAS, "steps": 8, "threshold": 1.0}
                        t0 = time.perf_counter()
                        async with session.post(url + "/v1/infill", json=body) as response:
                            answer = await response.json()
                        if response.status != 200:
                            raise RuntimeError(f"/v1/infill answered {response.status}: {answer}")
                        out.append(((time.perf_counter() - t0) * 1e3, answer["ms"], answer["tokens"]))

                await client(0, 2, [])  # warm-up
                for concurrency in (1, 16):
                    out: list[tuple[float, float, int]] = []
                    t0 = time.perf_counter()
                    await asyncio.gather(*(client(i, requests_per_client, out) for i in range(concurrency)))
                    wall = time.perf_counter() - t0
                    figures.http[concurrency] = {
                        "p50": percentile([o[0] for o in out], 0.5), "p99": percentile([o[0] for o in out], 0.99),
                        "engine_p50": percentile([o[1] for o in out], 0.5),
                        "requests_per_s": len(out) / wall, "tokens_per_s": sum(o[2] for o in out) / wall,
                    }
        finally:
            batcher.stop()
            await runner.cleanup()

    asyncio.run(run())


# ----------------------------------------------------------------------------------------------- report


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def timing_table(figures: list[Figures]) -> str:
    def ms(value: float | None, floor: float | None = None) -> str:
        if value is None:
            return "n/a"
        return f"{value:.2f} ms" + (f" ({value / floor:.2f}× floor)" if floor else "")

    def http(f: Figures, concurrency: int, key: str) -> str:
        row = f.http.get(concurrency)
        if not row:
            return "n/a"
        return f"{row[key]:.1f}" + (" ms" if key != "tokens_per_s" else " tok/s")

    spec: list[tuple[str, Callable[[Figures], str]]] = [
        ("weights read per step", lambda f: f"{f.weight_bytes / 1e9:.2f} GB"),
        ("weight-read floor per step", lambda f: ms(f.floor_ms)),
        ("step graphs captured at start-up", lambda f: f"{f.captures} in {f.capture_s:.1f} s"),
        ("engine step, eager at the bucket shapes (GPU only)", lambda f: ms(f.step_ms.get("eager"), f.floor_ms)),
        ("engine step as served (a CUDA graph on a GPU)", lambda f: ms(f.step_ms.get("graph"), f.floor_ms)),
        (f"{CANVAS}-token infill, 8 steps, repeat keystroke (context cached)", lambda f: ms(f.infill_ms.get("repeat"))),
        (f"{CANVAS}-token infill, 8 steps, cold (whole context encoded)", lambda f: ms(f.infill_ms.get("cold"))),
        ("steps the infill took", lambda f: str(f.steps)),
        (f"AR {CANVAS} tokens, prompt cached (graph-captured decode)", lambda f: ms(f.ar_ms.get("decode"))),
        (f"AR {CANVAS} tokens, with causal prefill", lambda f: ms(f.ar_ms.get("with prefill"))),
        ("AR ÷ infill (cached)", lambda f: f"{f.ar_ms['decode'] / f.infill_ms['repeat']:.1f}×" if f.ar_ms else "n/a"),
        ("/v1/infill p50, 1 client", lambda f: http(f, 1, "p50")),
        ("/v1/infill p99, 1 client", lambda f: http(f, 1, "p99")),
        ("/v1/infill p50 inside the engine, 1 client", lambda f: http(f, 1, "engine_p50")),
        ("/v1/infill p50, 16 clients", lambda f: http(f, 16, "p50")),
        ("/v1/infill p99, 16 clients", lambda f: http(f, 16, "p99")),
        ("tokens/s, 1 client", lambda f: http(f, 1, "tokens_per_s")),
        ("tokens/s, 16 clients", lambda f: http(f, 16, "tokens_per_s")),
    ]
    return markdown_table(["measure"] + [f.name for f in figures],
                          [[label] + [cell(f) for f in figures] for label, cell in spec])


def target_table(figures: list[Figures], card: str) -> str:
    rows: list[list[str]] = []

    def target(label: str, measured: float | None, limit: float, unit: str, at_least: bool = False) -> None:
        if measured is None:
            rows.append([label, "n/a", "not measured"])
            return
        ok = measured >= limit if at_least else measured <= limit
        rows.append([label, f"{measured:.2f}{unit} ({'≥' if at_least else '≤'} {limit:g}{unit})", "pass" if ok else "FAIL"])

    by_name = {f.name: f for f in figures}
    big, small = by_name.get(SHAPES["7b"][0]), by_name.get(SHAPES["0.5b"][0])
    if big:
        graph = big.step_ms.get("graph")
        target("7B step / weight-read floor", graph / big.floor_ms if graph else None, TARGET_STEP_OVER_FLOOR_7B, "×")
        target("7B 64-token infill through /v1/infill, p50", big.http.get(1, {}).get("p50"), TARGET_HTTP_7B_MS, " ms")
        target("7B 64-token infill inside the engine", big.infill_ms.get("repeat"), TARGET_ENGINE_7B_MS, " ms")
        target("7B 64-token infill with prefill", big.infill_ms.get("cold"), TARGET_PREFILL_7B_MS, " ms")
        if big.ar_ms and big.infill_ms.get("repeat"):
            target("7B infill vs graph-captured AR", big.ar_ms["decode"] / big.infill_ms["repeat"],
                   TARGET_SPEEDUP_OVER_AR, "×", at_least=True)
        if big.http.get(1) and big.http.get(16):
            target("7B throughput, 16 clients ÷ 1", big.http[16]["tokens_per_s"] / big.http[1]["tokens_per_s"],
                   TARGET_CONCURRENCY_GAIN, "×", at_least=True)
    if small:
        target("0.5B step (CUDA graph)", small.step_ms.get("graph"), TARGET_STEP_05B_MS, " ms")
    return f"Targets are set for an H200; this run: {card}.\n\n" + markdown_table(["target", "measured", "result"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny shapes (a CPU run that proves the script)")
    parser.add_argument("--models", default="0.5b,7b", help="comma-separated: 0.5b, 7b")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per figure")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP server figures")
    parser.add_argument("--out", type=Path, help="also write the report as markdown (and a PNG beside it)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_step.py: no CUDA device here; use --device cpu --small to check the script.", file=sys.stderr)
        return 2
    if args.device == "cpu" and not args.small:
        print("gpu_step.py: real shapes on the CPU would take hours; add --small.", file=sys.stderr)
        return 2
    wanted = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    if not wanted or any(m not in SHAPES for m in wanted):
        print(f"gpu_step.py: --models takes 0.5b and/or 7b, not {args.models!r}.", file=sys.stderr)
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
    dtype = torch.bfloat16 if cuda else torch.float32
    reps = args.reps or (20 if cuda else 3)
    if not cuda:
        torch.set_num_threads(1)  # the CPU run proves the script; one thread keeps it steady on a shared machine
    card = torch.cuda.get_device_name(device) if cuda else "CPU, 1 thread"
    shapes = [(SMALL_SHAPES if args.small else SHAPES)[m] for m in wanted]
    head = [f"# The engine on {card}", "",
            f"torch {torch.__version__}, triton {_triton_version()}, {dtype}; context {PREFIX_TOKENS} prefix + "
            f"{SUFFIX_TOKENS} suffix tokens, canvas {CANVAS}; random weights, the bundled tokenizer"]
    print("\n".join(head), flush=True)

    checks = [row for name, config in shapes
              for row in check_kernels(name, config, device, dtype, cuda, 300 if args.small else 32768)]
    with reported(checks, "commit selection", "[8, 256]"):
        checks += check_commit(device, cuda)
    check_md = markdown_table(["kernel", "shape", "‖out − ref‖ / ‖ref‖", "ok"],
                              [[k, s, e, "ok" if ok else "FAIL"] for k, s, e, ok in checks])
    print(f"\n## Kernels against the float32 reference (limit {RELATIVE_ERROR_LIMIT:g})\n\n{check_md}", flush=True)

    bandwidth = copy_bandwidth(device, 2048 if cuda else 64)
    print(f"\ncopy bandwidth (read + write): {bandwidth / 1e9:,.0f} GB/s", flush=True)
    figures: list[Figures] = []
    failures: list[CheckRow] = []
    for name, config in shapes:
        t0 = time.perf_counter()
        with reported(failures, "engine figures", name):
            loaded = random_model(config, device, dtype)
            size = weight_bytes(loaded.model)
            figures.append(Figures(name, size, size / bandwidth * 1e3))
            measure_engine(loaded, figures[-1], reps)
            if not args.no_http:
                measure_http(loaded, figures[-1], 4 if args.small else 8)
            # Printed at once as well: a run cut short by a time limit keeps what it measured.
            print(f"\n{timing_table(figures[-1:])}", flush=True)
        del loaded
        if cuda:
            torch.cuda.empty_cache()
        print(f"measured {name} in {time.perf_counter() - t0:.0f} s", flush=True)
    timings_md = timing_table(figures)
    targets_md = target_table(figures, card) if not args.small else "(targets apply to the real shapes on a GPU)"
    print(f"\n## The engine\n\n{timings_md}\n\n## Targets\n\n{targets_md}", flush=True)
    for what, name, error, _ in failures:
        print(f"FAILED {what} for {name}: {error}", flush=True)
    elapsed = f"\nwhole run: {time.perf_counter() - started:.0f} s"
    print(elapsed)
    if args.out:
        picture = args.out.with_suffix(".png")
        bar_chart(picture, f"Engine step vs the weight-read floor ({card})",
                  [f.name for f in figures],
                  {"weight-read floor": [f.floor_ms for f in figures],
                   "step, CUDA graph": [f.step_ms.get("graph", 0.0) for f in figures],
                   "step, eager": [f.step_ms.get("eager", 0.0) for f in figures]}, "ms per step")
        args.out.write_text(
            "\n".join(head) + f"\n\ncopy bandwidth (read + write): {bandwidth / 1e9:,.0f} GB/s\n\n"
            f"## Kernels against the float32 reference\n\n{check_md}\n\n## The engine\n\n{timings_md}\n\n"
            f"![step vs floor]({picture.name})\n\n## Targets\n\n{targets_md}\n{elapsed}\n"
        )
    return 0 if all(ok for *_, ok in checks) and not failures else 1


def _triton_version() -> str:
    try:
        import triton
    except ImportError:
        return "not installed"
    return triton.__version__


if __name__ == "__main__":
    sys.exit(main())
