"""Latency of issue 21's second round against it undone, in one process: two engines on the same weights, one with
the round undone per instance (one forward per prefix, no reuse from the slot, 36 + 12 MB caches; cache entries are
in mappings in both), engine_cpu.py's places alternated between them. Prints the median ms per row, the seconds
spent per stage and where prefix tokens came from.

    python bench/results/issue21/round2/paired_in_process.py [places]
"""

from __future__ import annotations

import collections
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/
from engine_cpu import place_requests, places  # noqa: E402

from mercury_lsp.engine.api.infill import InfillRequest  # noqa: E402
from mercury_lsp.engine.checkpoint import load_checkpoint  # noqa: E402
from mercury_lsp.engine.infill import EngineSettings, InfillEngine  # noqa: E402
from mercury_lsp.models import BUNDLED_MODEL  # noqa: E402

from workload import SOURCE_FILE  # noqa: E402


def timed(spent: collections.Counter, obj: object, name: str) -> None:
    method = getattr(obj, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    setattr(obj, name, wrapper)


def main() -> None:
    torch.set_num_threads(1)
    text = SOURCE_FILE.read_text()
    loaded = load_checkpoint(BUNDLED_MODEL, device="cpu")
    engines = {"on": InfillEngine(loaded, EngineSettings()), "r1": InfillEngine(loaded, EngineSettings())}
    undone = engines["r1"].prefix_cache
    undone.group_tokens = 2**20
    undone.held_run = lambda slot, ids: 0
    undone.max_bytes, engines["r1"].suffix_cache.max_bytes = 36 * 2**20, 12 * 2**20
    times = {name: collections.defaultdict(list) for name in engines}
    spent = {name: collections.Counter() for name in engines}
    for name, engine in engines.items():
        for obj, method in ((engine.prefix_cache, "encode_into"), (engine, "_group_forward"), (engine.canvas_step, "run")):
            timed(spent[name], obj, method)
    for i, (middle, indent) in enumerate(places(text, int(sys.argv[1]) if len(sys.argv) > 1 else 12)):
        for name in ["on", "r1"] if i % 2 == 0 else ["r1", "on"]:
            for kind, request in place_requests(text, middle, indent):
                started = time.perf_counter()
                engines[name].infill(InfillRequest(**request))
                times[name][kind.split()[0]].append((time.perf_counter() - started) * 1000)  # cold, warm, block
    for name, engine in engines.items():
        cache = engine.prefix_cache
        print(name, {k: round(statistics.median(v)) for k, v in times[name].items()},
              {k: round(v, 1) for k, v in spent[name].items()}, "slot", cache.tokens_in_slot, "cache",
              cache.tokens_reused, "computed", cache.tokens_computed, "suffix hits", engine.suffix_cache.hits)


if __name__ == "__main__":
    main()
