"""The latency the engine's memory features cost: bench/engine_cpu.py against the engine as it is (`on`), with the
memory features of issue 21 undone (`off`) and with the CPU step padded to the canvas buckets (`buckets`), in
interleaved rounds (on off buckets, on off buckets, ...) on a shared CPU; prints each run and the medians.

    python bench/memory_ab.py [--rounds 3] [--places 8] [--threads 1] [--variants on off buckets]

The variants are switched by bench/memory_variants/sitecustomize.py (read there what each undoes), which every
Python process started with that folder on PYTHONPATH applies, the engine server included. The same switch
reaches the memory soak: `PYTHONPATH=bench/memory_variants MERCURY_MEMORY_VARIANT=buckets python bench/soak.py
--memory 1500`.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = {"warm line": "line after a keystroke", "cold line": "line at a new place", "block": "block, "}


def run_engine_cpu(variant: str, places: int, threads: int) -> dict[str, tuple[float, float]]:
    """One bench/engine_cpu.py run under `variant`: {row: (p50 ms, p90 ms)}."""
    env = {**os.environ, "PYTHONPATH": str(HERE / "memory_variants"), "MERCURY_MEMORY_VARIANT": variant}
    done = subprocess.run([sys.executable, str(HERE / "engine_cpu.py"), "--places", str(places), "--threads",
                           str(threads)], env=env, capture_output=True, text=True, check=True)
    found = {}
    for line in done.stdout.splitlines():
        for key, start in ROWS.items():
            if line.startswith(f"| {start}"):
                p50, p90 = re.findall(r"\| (\d+) ms", line)[:2]
                found[key] = (float(p50), float(p90))
    if set(found) != set(ROWS):
        raise SystemExit(f"memory_ab: no table in engine_cpu's output:\n{done.stdout}\n{done.stderr[-2000:]}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--places", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["on", "off", "buckets"])
    args = parser.parse_args()
    runs: dict[str, list[dict[str, tuple[float, float]]]] = {v: [] for v in args.variants}
    print(f"memory_ab: engine_cpu.py --places {args.places} --threads {args.threads}, {args.rounds} rounds of "
          f"{' '.join(args.variants)}\n")
    print("| round | variant | " + " | ".join(f"{k} p50 / p90 ms" for k in ROWS) + " |")
    print("|---|---|" + "---|" * len(ROWS))
    for round_ in range(1, args.rounds + 1):
        for variant in args.variants:
            found = run_engine_cpu(variant, args.places, args.threads)
            runs[variant].append(found)
            print(f"| {round_} | {variant} | " + " | ".join(f"{found[k][0]:.0f} / {found[k][1]:.0f}" for k in ROWS)
                  + " |", flush=True)
    base = args.variants[0]
    print("\n| variant | " + " | ".join(f"{k} p50, median of runs" for k in ROWS) + " |")
    print("|---|" + "---|" * len(ROWS))
    for variant, found in runs.items():
        cells = []
        for key in ROWS:
            median = statistics.median(run[key][0] for run in found)
            reference = statistics.median(run[key][0] for run in runs[base])
            cells.append(f"{median:.0f} ms" + ("" if variant == base else f" ({median / reference - 1:+.1%})"))
        print(f"| {variant} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
