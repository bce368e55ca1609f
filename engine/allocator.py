"""The engine process's C heap (glibc malloc): two arenas, and memory handed back to the system whenever a request
ends (at most once a second), once a burst of requests is over and every 30 s under steady load.

Every CPU tensor comes from malloc, and each thread that allocates gets an arena of its own (up to 8 per core):
two bound them. glibc's own mmap threshold stays: it rises to the largest block freed (up to 32 MB), so a request's
tensors reuse the pages earlier ones freed. A fixed 256 KB threshold (issue 21's first round) gave every larger
tensor a fresh mapping, its pages faulted in and zeroed at each use: 30-40% of a request's latency on a CPU
(bench/RESULTS.md). What the heaps keep free between trims is what `malloc_trim` returns. MKL's GEMM buffers come
from these heaps too, not from MKL's own pool, which never hands them back (set in engine/__init__.py, before torch
loads).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import torch

from mercury_lsp.engine.context_cache import ContextSlots

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def configure_heap() -> bool:
    """Cap the arenas; call before the engine's threads allocate. False off glibc."""
    if _LIBC is None:
        return False
    done = _LIBC.mallopt(M_ARENA_MAX, ARENAS) == 1
    if not done:
        log.warning("glibc refused a malloc setting; memory may grow with varied requests")
    return done


def trim_heap() -> None:
    """Hand the heaps' free pages back to the system (malloc_trim; nothing off glibc)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def return_idle_memory(context: ContextSlots, keep_slots: int = 1) -> None:
    """After a burst, with every slot free: hand back the pages of context slots past the first `keep_slots` (the
    next request lands in slot 0), the CUDA cache's unused blocks and the C heaps' free pages."""
    for slot in range(keep_slots, context.scratch + 1):
        context.drop_slot(slot)
    if context.length.is_cuda:
        torch.cuda.empty_cache()
    trim_heap()
