"""Where the engine's memory goes: RSS after each stage of loading, the bytes each preallocated part holds, then RSS
and cache bytes over varied requests run in this process (one thread, no HTTP), and what trimming the C heap
returns.

    python bench/memory_breakdown.py [--model PATH] [--requests 300] [--max-batch 16] [--every 100]

Run it under different allocator settings to compare them, e.g. `MALLOC_ARENA_MAX=2 python bench/...`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tensor_mb(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per request (0: the engine's)")
    parser.add_argument("--default-heap", action="store_true", help="leave glibc's malloc settings alone")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    stages: list[tuple[str, float]] = [("python", rss_mb())]
    import torch

    torch.set_num_threads(args.threads)
    stages.append(("import torch", rss_mb()))
    from mercury_lsp.engine.allocator import configure_heap, return_idle_memory
    from mercury_lsp.engine.api.infill import InfillRequest
    from mercury_lsp.engine.checkpoint import load_checkpoint
    from mercury_lsp.engine.infill import EngineSettings, InfillEngine
    from mercury_lsp.models import BUNDLED_MODEL

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from soak import VariedTraffic, heldout_documents

    stages.append(("import engine (tokenizers, aiohttp-free)", rss_mb()))
    if not args.default_heap:
        configure_heap()
    loaded = load_checkpoint(Path(args.model) if args.model else BUNDLED_MODEL, device="cpu")
    stages.append(("load checkpoint", rss_mb()))
    engine = InfillEngine(loaded, EngineSettings(max_batch=args.max_batch))
    stages.append((f"InfillEngine (max_batch {args.max_batch})", rss_mb()))

    weights = tensor_mb(list(loaded.model.parameters()) + list(loaded.model.buffers()))
    context = tensor_mb(engine.context.k + engine.context.v)
    canvases = engine.canvases
    tables = tensor_mb([canvases.first_allowed, canvases.first_newline])
    canvas_rest = tensor_mb([v for k, v in vars(canvases).items()
                             if isinstance(v, torch.Tensor) and k not in ("first_allowed", "first_newline")])
    vocab_tables = tensor_mb([v for v in vars(engine.tables).values() if isinstance(v, torch.Tensor)])
    print(f"memory_breakdown: {os.cpu_count()} cores (shared), model {loaded.name}, {loaded.dtype}, "
          f"heap {'glibc defaults' if args.default_heap else 'configure_heap()'}, "
          f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', '-')}\n")
    print("| stage | RSS (MB) | + (MB) |\n|---|---|---|")
    for (name, rss), (_, before) in zip(stages, [("", 0.0)] + stages):
        print(f"| {name} | {rss:.0f} | {rss - before:+.0f} |")
    print("\n| preallocated part | MB |\n|---|---|")
    print(f"| weights ({loaded.dtype}) | {weights:.1f} |")
    print(f"| ContextSlots K/V ({args.max_batch}+1 slots × {engine.context.capacity} positions) | {context:.1f} |")
    print(f"| CanvasSlots first_allowed/first_newline [S, V] | {tables:.2f} |")
    print(f"| CanvasSlots, the rest | {canvas_rest:.2f} |")
    print(f"| VocabTables | {vocab_tables:.2f} |")

    documents = heldout_documents(6, args.seed)
    traffic = VariedTraffic(documents, random.Random(args.seed), args.steps)
    print("\n| requests | RSS (MB) | prefix cache (MB) | suffix cache (MB) | ms / request |\n|---|---|---|---|---|")
    started = time.perf_counter()
    for n in range(1, args.requests + 1):
        engine.infill(InfillRequest(**traffic.next_body()))
        if n % args.every == 0:
            prefix, suffix = engine.prefix_cache.bytes / 2**20, engine.suffix_cache.bytes / 2**20
            ms = (time.perf_counter() - started) * 1000 / args.every
            print(f"| {n} | {rss_mb():.0f} | {prefix:.1f} | {suffix:.1f} | {ms:.0f} |", flush=True)
            started = time.perf_counter()
    return_idle_memory(engine.context)
    print(f"\nafter return_idle_memory (slots past the first dropped, malloc_trim): {rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
