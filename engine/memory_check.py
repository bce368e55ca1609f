"""Will the model fit? Its weights at the chosen dtype plus the engine's preallocated caches, against free GPU
memory or available RAM, checked before a byte is loaded: a refusal in one line instead of an out-of-memory crash
halfway through a load.

The figures mirror what `InfillEngine.__init__` allocates (`ContextSlots`, `CanvasSlots`) and the widest step's
logits and activations. The prefix and suffix caches fill with use, up to `MemoryNeed.growth`; they are not
counted against free memory (the language server's default 1,024-token prefix keeps them far below the bound), and
attention workspaces and the allocator's slack are not counted either: the figure is a floor, not a promise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from mercury_lsp.engine.api.infill import MAX_CANVAS
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.engine.model import ModelConfig

# Pretend this much memory is available (bytes, or with a K/M/G/T suffix): caps the engine's share, and lets tests
# exercise the refusal on any machine.
AVAILABLE_OVERRIDE = "MERCURY_MEMORY_AVAILABLE"
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class MemoryNeed:
    weights: int
    caches: int  # allocated at start-up, and the widest step's workspace
    growth: int = 0  # what the prefix and suffix caches may add as they fill, at their bounds

    @property
    def total(self) -> int:
        return self.weights + self.caches


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def memory_need(config: ModelConfig, dtype: torch.dtype, max_batch: int, context_tokens: int,
                cache_bytes: int) -> MemoryNeed:
    """Bytes for the weights, for what the engine preallocates, and for what its caches may add with use."""
    size = dtype_bytes(dtype)
    capacity = min(config.max_position_embeddings, context_tokens)
    kv_per_token = 2 * config.num_layers * config.num_kv_heads * config.head_dim * size  # keys and values
    slots = max_batch + 1  # the last is scratch for padding rows
    context = slots * capacity * kv_per_token
    remembered = cache_bytes  # prefix chunks and suffixes, bounded in bytes
    width = MAX_CANVAS + 1
    canvases = slots * width * (8 + 4 + 2) + 2 * slots * config.vocab_size  # ids, confidence, flags; vocab masks
    logits = max_batch * width * config.vocab_size * 4  # the widest step's float32 logits
    activations = max_batch * (width + 1) * (2 * config.intermediate_size + 4 * config.hidden_size) * size
    weights = config.num_parameters() * size
    return MemoryNeed(weights, context + canvases + logits + activations, remembered)


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    if match is None:
        raise CheckpointError(f"{AVAILABLE_OVERRIDE} must be a size such as 12G or 512M, not {text!r}.")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory(device: torch.device) -> tuple[int | None, str]:
    """(bytes free, what they are): free memory on the GPU, or RAM the kernel says is available; None when
    unknown. $MERCURY_MEMORY_AVAILABLE overrides the measurement."""
    where = "GPU memory free" if device.type == "cuda" else "RAM available"
    override = os.environ.get(AVAILABLE_OVERRIDE)
    if override:
        return parse_size(override), f"{where} ({AVAILABLE_OVERRIDE})"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"{where} on {torch.cuda.get_device_name(device)}"
    return _mem_available(), where


def other_engines() -> list[int]:
    """Pids of this user's other `mercury-engine serve` processes: the usual holder of the memory we lack."""
    found = []
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and any(b"mercury" in arg for arg in args[: args.index(b"serve")]):
            found.append(int(entry))
    return sorted(found)


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count < 10e9 else f"{count / 1e9:.1f} GB"


def check_memory(need: MemoryNeed, device: torch.device, dtype: torch.dtype, max_batch: int) -> None:
    """Refuse (CheckpointError, one sentence naming both numbers and the ways out) when the need exceeds what is
    free."""
    free, where = available_memory(device)
    if free is None or need.total <= free:
        return
    dtype_name = str(dtype).removeprefix("torch.")
    ways = ["a smaller model (mercury-engine models)", "a smaller --max-batch"]
    if device.type == "cuda":
        ways.insert(0, "--device cpu")
    holders = other_engines()
    held = (f"; another engine (pid {', '.join(map(str, holders))}) is running: `mercury-engine stop` or kill it"
            if holders else "")
    raise CheckpointError(
        f"the model needs {gigabytes(need.total)} ({gigabytes(need.weights)} of weights in {dtype_name} + "
        f"{gigabytes(need.caches)} of caches for --max-batch {max_batch}) but only {gigabytes(free)} of {where}"
        f"{held}; use {', '.join(ways[:-1])} or {ways[-1]}."
    )
