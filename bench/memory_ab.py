"""The latency the engine's memory features cost: bench/engine_cpu.py against the engine as it is (`on`), with the
memory features of issue 21 undone (`off`) and with the CPU step padded to the canvas buckets (`buckets`), in
interleaved rounds (on off buckets, on off buckets, ...) on a shared CPU; prints each run and the medians.

    python bench/memory_ab.py [--rounds 3] [--places 8] [--threads 1] [--variants on off buckets]
    python bench/memory_ab.py --paired [--places 24] [--variants on round1]

`--paired` keeps one engine server per variant up at once and sends each place's requests (engine_cpu.py's cold
line, warm keystrokes and block) to every variant in turn, the order rotating from place to place: the load of a
shared CPU drifts over minutes, and whole runs minutes apart differed by 30% under the same code.

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


def paired(variants: list[str], places_count: int, threads: int) -> int:
    """Every place's requests to each variant's server in turn; p50 / p90 per variant and row."""
    import tempfile
    from contextlib import ExitStack

    from engine_cpu import EngineServer, place_requests, places

    from workload import SOURCE_FILE, benchmark_model

    text = SOURCE_FILE.read_text()
    times: dict[str, dict[str, list[float]]] = {v: {k: [] for k in ROWS} for v in variants}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder, _ = benchmark_model(None, Path(tmp), "small")
        servers = {}
        for variant in variants:  # each server process reads its variant from the environment it starts with
            os.environ.update(PYTHONPATH=str(HERE / "memory_variants"), MERCURY_MEMORY_VARIANT=variant)
            servers[variant] = stack.enter_context(EngineServer(folder, threads))
        for i, (middle, indent) in enumerate(places(text, places_count)):
            for variant in variants[i % len(variants) :] + variants[: i % len(variants)]:
                for kind, request in place_requests(text, middle, indent):
                    times[variant][kind].append(servers[variant].infill(request)[0])
    print(f"memory_ab --paired: engine_cpu.py's requests at {places_count} places, each to "
          f"{', '.join(variants)} in turn, --threads {threads}\n")
    print("| variant | " + " | ".join(f"{k} p50 / p90 ms" for k in ROWS) + " |")
    print("|---|" + "---|" * len(ROWS))
    base = variants[0]
    for variant in variants:
        cells = []
        for key in ROWS:
            p50, p90 = statistics.median(times[variant][key]), statistics.quantiles(times[variant][key], n=10)[8]
            reference = statistics.median(times[base][key])
            cells.append(f"{p50:.0f} / {p90:.0f}" + ("" if variant == base else f" ({p50 / reference - 1:+.1%})"))
        print(f"| {variant} | " + " | ".join(cells) + " |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--places", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=["on", "off", "buckets"])
    parser.add_argument("--paired", action="store_true", help="one server per variant, requests in turn")
    args = parser.parse_args()
    if args.paired:
        return paired(args.variants, args.places, args.threads)
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
