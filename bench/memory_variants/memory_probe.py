"""Where an engine's memory goes over a long run: a thread in the engine process that writes, every few seconds,
its CPU time and pages faulted in so far, its RSS split by mapping (smaps), the slots' resident pages and the
caches' bytes, glibc's heap figures (mallinfo2: in use, free, mmapped) and, when asked, tracemalloc's Python
allocations that grew most since the first reading, with the live object counts by type that grew most.

Loaded by sitecustomize.py when MERCURY_MEMORY_PROBE names a file (the engine server only: it starts with the
engine's first InfillEngine). MERCURY_MEMORY_PROBE_EVERY: seconds between readings (60); MERCURY_MEMORY_PROBE_PYTHON=1
also starts tracemalloc (Python allocations get slower, so latencies of such a run are not figures).
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_mb() -> dict[str, float]:
    """glibc's heap, all arenas: sbrk/arena bytes in use and free, bytes in mmapped blocks."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {"heap used": info.uordblks / 2**20, "heap free": info.fordblks / 2**20, "mmapped": info.hblkhd / 2**20}


def smaps_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident MB by kind of mapping: brk heap, glibc's arenas (64 MB mappings), "slots" (anonymous mappings over
    300 MB: the slots' layers merge into some, with whatever was mapped beside them), other anonymous (cache
    entries, mmapped blocks, other slot layers), files. The slots' own resident pages are engine_mb's figure."""
    out: Counter[str] = Counter()
    kind = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5 and ":" in parts[3]:
            low, high = (int(x, 16) for x in parts[0].split("-"))
            size, path = (high - low) / 2**20, parts[5] if len(parts) > 5 else ""
            if path:
                kind = "brk" if path == "[heap]" else "files" if path.startswith("/") else path
            else:
                kind = "slots" if size > 300 else "arenas" if 60 <= size <= 64.01 else "anon other"
        elif parts[0] == "Rss:":
            out[kind] += int(parts[1]) / 1024
    return dict(out)


def resident_mb(tensors: list) -> float:
    """MB of the tensors' pages that are resident (mincore), for tensors in page-aligned mappings of their own."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    page, total = os.sysconf("SC_PAGE_SIZE"), 0
    for tensor in tensors:
        start, length = tensor.data_ptr(), tensor.numel() * tensor.element_size()
        pages = -(-length // page)
        vector = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vector) == 0:
            total += sum(byte & 1 for byte in vector)
    return total * page / 2**20


def engine_mb(engine) -> dict[str, float]:
    """What the engine holds on purpose: its slots' resident pages and its caches' bytes."""
    return {"slots": resident_mb(engine.context.k + engine.context.v) if engine.context._regions[0] else 0.0,
            "caches": (engine.prefix_cache.bytes + engine.suffix_cache.bytes) / 2**20}


def _objects_by_type() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


def _probe(engine, path: Path, every: float, python: bool) -> None:
    first_snapshot = first_types = None
    started = time.monotonic()
    with path.open("a", buffering=1) as out:
        while True:
            time.sleep(every)
            maps, heap, held = smaps_mb(), heap_mb(), engine_mb(engine)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            out.write(f"[{time.monotonic() - started:7.0f} s] cpu {usage.ru_utime + usage.ru_stime:.0f} s, "
                      f"{usage.ru_minflt} pages faulted in | rss {sum(maps.values()):.0f} | "
                      + " | ".join(f"{k} {v:.0f}" for k, v in sorted(maps.items()) if v >= 0.5) + " || "
                      + " | ".join(f"{k} {v:.1f}" for k, v in {**held, **heap}.items()) + "\n")
            if not python:
                continue
            # Counted with the first snapshot alive and the new one not yet taken: a snapshot's traces are tuples.
            types = _objects_by_type() if first_snapshot is not None else None
            snapshot = tracemalloc.take_snapshot()
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            own = tracemalloc.get_tracemalloc_memory() / 2**20
            out.write(f"  python traced {traced:.1f} MB (tracemalloc's own {own:.1f})\n")
            if first_snapshot is None:
                first_snapshot, first_types = snapshot, _objects_by_type()
                continue
            for stat in snapshot.compare_to(first_snapshot, "lineno")[:8]:
                out.write(f"    {stat.size_diff / 1024:+9.0f} KB {stat.count_diff:+7d}  {stat.traceback[0]}\n")
            grown = sorted(((types[k] - first_types.get(k, 0), k) for k in types), reverse=True)[:6]
            out.write("    objects: " + ", ".join(f"{k} {d:+d}" for d, k in grown if d) + "\n")


def start(engine, path: str, every: float, python: bool) -> None:
    if python:
        tracemalloc.start(1)
    threading.Thread(target=_probe, args=(engine, Path(path), every, python), daemon=True, name="memory-probe").start()


def start_from_environment(engine) -> None:
    start(engine, os.environ["MERCURY_MEMORY_PROBE"], float(os.environ.get("MERCURY_MEMORY_PROBE_EVERY", "60")),
          os.environ.get("MERCURY_MEMORY_PROBE_PYTHON") == "1")
