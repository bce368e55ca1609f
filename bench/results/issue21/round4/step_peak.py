"""Peak RSS over six steps of a batch of three requests (3,500-character prefixes, 800-character suffixes from
bench/engine_cpu.py's file), above what the engine held before them (after a malloc_trim), in process, one thread;
blocks (64 tokens) then single lines (16), two rounds each. Run under a memory variant to compare:

    PYTHONPATH=bench/memory_variants MERCURY_MEMORY_VARIANT=round3 python bench/results/issue21/round4/step_peak.py
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import torch

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import InfillEngine, InfillRequest
from mercury_lsp.models import resolve_model_path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # bench/
from workload import SOURCE_FILE  # noqa: E402


def status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def main() -> None:
    torch.set_num_threads(1)
    libc = ctypes.CDLL("libc.so.6")
    engine = InfillEngine(load_checkpoint(resolve_model_path(None), device="cpu"))
    text = SOURCE_FILE.read_text()
    for width, single in ((64, False), (16, True)):
        for round_ in range(2):
            cuts = [4000 + 300 * round_, 9000, 15000]
            jobs = [job for cut in cuts for job in engine.start(InfillRequest(
                prefix=text[cut - 3500 : cut], suffix=text[cut : cut + 800], max_tokens=width, single_line=single,
                steps=6))]
            libc.malloc_trim(0)
            before = status_mb("VmRSS:")
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            for _ in range(6):
                engine.step(jobs)
            peak = status_mb("VmHWM:")
            engine.release(jobs)
            print(f"width {width} round {round_}: before {before:.0f} MB, peak over it {peak - before:.1f} MB")


if __name__ == "__main__":
    main()
