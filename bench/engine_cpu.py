"""Infill latency on CPU: 8-, 24- and 64-token holes by diffusion, against the autoregressive path of the same model.

    python bench/engine_cpu.py [--model PATH] [--repeats 10] [--context 1024]

Holes are cut from a real source file (the standard library's `argparse.py`) with ~3/4 of the context before the
cursor and ~1/4 after. Prints a markdown table. Without a bundled model or --model, it builds random weights of
DESIGN.md's small shape (d 512, 8 layers; a tiny vocabulary), so the numbers are about speed only.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mercury_lsp.engine.autoregressive import AutoregressiveDecoder
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import InfillEngine
from mercury_lsp.infill_api import InfillRequest

from workload import SOURCE_FILE, benchmark_model, holes, percentile

LENGTHS = (8, 24, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder, label = benchmark_model(args.model, Path(tmp), "small")
        loaded = load_checkpoint(folder, device="cpu")
        engine = InfillEngine(loaded)
        cases = holes(SOURCE_FILE.read_text(), lambda t: len(engine.vocab.encode(t)), args.context, args.repeats)
        params = loaded.model.config.num_parameters()
        print(f"model: {label} ({params / 1e6:.1f}M parameters), CPU threads: {torch.get_num_threads()}, "
              f"{platform.processor() or platform.machine()}, context asked ~{args.context} tokens "
              f"(cut to the model's {loaded.model.config.max_position_embeddings} positions)")
        engine.infill(InfillRequest(prefix=cases[0][0], suffix=cases[0][1], max_tokens=8))  # warm-up

        rows = []
        for length in LENGTHS:
            latencies, step_ms, steps, first_ms, context = [], [], [], [], []
            for prefix, suffix in cases:
                request = InfillRequest(prefix=prefix, suffix=suffix, max_tokens=length)
                started = time.perf_counter()
                jobs = engine.start(request)
                first_ms.append((time.perf_counter() - started) * 1000)
                while not all(j.done for j in jobs):
                    t = time.perf_counter()
                    engine.step(jobs)
                    step_ms.append((time.perf_counter() - t) * 1000)
                latencies.append((time.perf_counter() - started) * 1000)
                steps.append(jobs[0].steps_done)
                engine.release(jobs)
                context.append(len(jobs[0].prefix_ids) + len(jobs[0].suffix_ids))
            ar_latency, ar_token_ms = [], []
            decoder = AutoregressiveDecoder(loaded.model, loaded.model.config.max_position_embeddings)
            for prefix, suffix in cases:
                # The same prefix tokens the infill saw (cut to the model's positions), without the suffix.
                ids = engine.tokenize_context(InfillRequest(prefix=prefix, suffix=suffix), length + 1).prefix_ids
                result = decoder.generate(ids, length)
                ar_latency.append(result.prefill_ms + result.decode_ms)
                ar_token_ms.append(result.decode_ms / max(1, len(result.ids) - 1))
            rows.append((length, latencies, step_ms, steps, first_ms, ar_latency, ar_token_ms, context))

        print()
        print("| hole | context tokens | diffusion p50 | p90 | steps (mean) | first step incl. context | later step | "
              "AR p50 | AR p90 | AR per token | AR / diffusion (p50) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for length, lat, step_ms, steps, first_ms, ar, ar_tok, context in rows:
            p50, ar50 = percentile(lat, 0.5), percentile(ar, 0.5)
            later = f"{statistics.mean(step_ms):.1f} ms" if step_ms else "-"
            print(
                f"| {length} tokens | {statistics.mean(context):.0f} | {p50:.0f} ms | {percentile(lat, 0.9):.0f} ms | {statistics.mean(steps):.1f} | "
                f"{statistics.median(first_ms):.0f} ms | {later} | {ar50:.0f} ms | {percentile(ar, 0.9):.0f} ms | "
                f"{statistics.mean(ar_tok):.1f} ms | {ar50 / p50:.2f}x |"
            )
        cache = engine.prefix_cache
        print(f"\nprefix tokens reused from the chunk cache: {cache.tokens_reused}, computed: {cache.tokens_computed}")


if __name__ == "__main__":
    main()
