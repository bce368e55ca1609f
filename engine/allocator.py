"""The engine process's C heap (glibc malloc): settings that keep varied tensor sizes from fragmenting it, and
handing memory back to the system once a burst of requests is over.

Every CPU tensor comes from malloc. By default glibc raises its mmap threshold to the largest block freed so far
(up to 32 MB), so after the first large tensor is freed, tensors of every later request's shape are carved from
heaps that never shrink, and each thread that allocates gets an arena of its own (8 per core). A fixed threshold
keeps large tensors in mappings that are unmapped on free; two arenas bound the rest (bench/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import torch

from mercury_lsp.engine.context_cache import ContextSlots

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 256 * 1024  # bytes: larger blocks get their own mapping (a 1x512 float row is 2 KB; a layer's
                             # activations for a request are hundreds of KB)
TRIM_THRESHOLD = 4 * 2**20  # free space at a heap's top beyond this goes back to the system at once
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
    """Fix the mmap and trim thresholds and cap the arenas; call before the model allocates. False off glibc."""
    if _LIBC is None:
        return False
    done = all(_LIBC.mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, ARENAS)))
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
