"""Ad-hoc (issue 21, third round): pages faulted in and CPU ms per request, in process, on engine_cpu.py's requests,
for the variant in MERCURY_MEMORY_VARIANT with optional extra patches (PATCH=heapentries: cache entries in the C heap;
PATCH=notrimslot: released slots not trimmed; TRIM_EVERY=1: the heap trimmed at most once a second after a request,
as the server does). One thread, no HTTP, no trims unless TRIM_EVERY is set.

    PYTHONPATH=bench/memory_variants MERCURY_MEMORY_VARIANT=on python bench/results/issue21/round3/faults_in_process.py
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/
from engine_cpu import place_requests, places  # noqa: E402

from mercury_lsp.engine import allocator, context_cache  # noqa: E402
from mercury_lsp.engine.api.infill import InfillRequest  # noqa: E402
from mercury_lsp.engine.checkpoint import load_checkpoint  # noqa: E402
from mercury_lsp.engine.infill import InfillEngine  # noqa: E402
from mercury_lsp.models import BUNDLED_MODEL  # noqa: E402

from workload import SOURCE_FILE  # noqa: E402


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def counted(obj: object, name: str, spent: dict[str, int]) -> None:
    """Count the pages faulted in inside obj.name."""
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        before = faults()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0) + faults() - before

    setattr(obj, name, wrapper)


def main() -> None:
    torch.set_num_threads(1)
    patch = os.environ.get("PATCH", "")
    if "heapentries" in patch:
        def in_heap(kv):
            block = torch.stack([t for pair in kv for t in pair])
            return [(block[2 * i], block[2 * i + 1]) for i in range(len(kv))]

        context_cache._packed = in_heap
    if "notrimslot" in patch:
        context_cache.ContextSlots.trim_slot = lambda self, slot, keep: False
    engine = InfillEngine(load_checkpoint(BUNDLED_MODEL, device="cpu"))
    spent: dict[str, int] = {}
    counted(engine.prefix_cache, "encode_into", spent)
    counted(engine.suffix_cache, "put", spent)
    counted(engine.context, "trim_slot", spent)
    counted(allocator, "trim_heap", spent)
    text = SOURCE_FILE.read_text()
    rows: dict[str, list[tuple[int, float]]] = {}
    trim_every = float(os.environ.get("TRIM_EVERY", "inf"))
    last_trim = time.monotonic()
    for middle, indent in places(text, int(os.environ.get("PLACES", "8"))):
        for kind, body in place_requests(text, middle, indent):
            before, cpu = faults(), time.thread_time()
            engine.infill(InfillRequest(**body))
            if time.monotonic() - last_trim > trim_every:
                allocator.trim_heap()
                last_trim = time.monotonic()
            rows.setdefault(kind, []).append((faults() - before, (time.thread_time() - cpu) * 1000))
    print(os.environ.get("MERCURY_MEMORY_VARIANT"), patch, "trim", trim_every)
    for kind, seen in rows.items():
        print(f"  {kind}: faults median {statistics.median(f for f, _ in seen):.0f} mean "
              f"{statistics.fmean(f for f, _ in seen):.0f}; cpu ms median {statistics.median(c for _, c in seen):.0f}")
    print("  faults inside:", spent)


if __name__ == "__main__":
    main()
