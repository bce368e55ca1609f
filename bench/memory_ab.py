"""The latency the engine's memory features cost: bench/engine_cpu.py against the engine as it is (`on`), with the
memory features of issue 21 undone (`off`) and with the CPU step padded to the canvas buckets (`buckets`), in
interleaved rounds (on off buckets, on off buckets, ...) on a shared CPU; prints each run and the medians.

    python bench/memory_ab.py [--rounds 3] [--places 8] [--threads 1] [--variants on off buckets]
    python bench/memory_ab.py --paired [--places 24] [--variants on round1]

`--paired` keeps one engine server per variant up at once and sends each place's requests (engine_cpu.py's cold
line, warm keystrokes and block) to every variant in turn, the order rotating from place to place: the load of a
shared CPU drifts over minutes, and whole runs minutes apart differed by 30% under the same code. Beside wall ms it
reports the tokens per denoising step the requests got, the CPU ms the engine process ran for each request, the
pages it faulted in (a count, not a timing: what memory handed back and touched again costs), and the median of
each request's ratio to the same request on the first variant.

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


def page_fault_us() -> float:
    """What one page faulted in costs this CPU (µs): first writes to a fresh 64 MB mapping against second writes."""
    import mmap
    import time

    import torch

    region = mmap.mmap(-1, 64 * 2**20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    tensor = torch.frombuffer(region, dtype=torch.float32)
    started = time.perf_counter()
    tensor.fill_(1.0)
    first = time.perf_counter()
    tensor.fill_(2.0)
    second = time.perf_counter()
    del tensor
    region.close()
    return ((first - started) - (second - first)) / (64 * 2**20 // mmap.PAGESIZE) * 1e6


def paired(variants: list[str], places_count: int, threads: int) -> int:
    """Every place's requests to each variant's server in turn; per variant and row: wall and CPU ms, pages faulted
    in, and each request's ratio to the same request on the first variant."""
    import tempfile
    from contextlib import ExitStack

    from engine_cpu import EngineServer, place_requests, places

    from workload import SOURCE_FILE, benchmark_model

    text = SOURCE_FILE.read_text()
    measures = ("wall ms", "cpu ms", "faults", "tokens", "steps")
    seen = {v: {m: {k: [] for k in ROWS} for m in measures} for v in variants}  # variant -> measure -> row -> list
    answers = {v: {k: [] for k in ROWS} for v in variants}  # variant -> row -> completion texts, in order
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder, _ = benchmark_model(None, Path(tmp), "small")
        servers = {}
        for variant in variants:  # each server process reads its variant from the environment it starts with
            os.environ.update(PYTHONPATH=str(HERE / "memory_variants"), MERCURY_MEMORY_VARIANT=variant)
            servers[variant] = stack.enter_context(EngineServer(folder, threads))
        for i, (middle, indent) in enumerate(places(text, places_count)):
            for variant in variants[i % len(variants) :] + variants[: i % len(variants)]:
                server = servers[variant]
                for kind, request in place_requests(text, middle, indent):
                    cpu, faults = server.cpu_ms(), server.minor_faults()
                    wall, answer = server.infill(request)
                    seen[variant]["wall ms"][kind].append(wall)
                    answers[variant][kind].append(answer.get("text", answer.get("candidates")))
                    seen[variant]["cpu ms"][kind].append(server.cpu_ms() - cpu)
                    seen[variant]["faults"][kind].append(server.minor_faults() - faults)
                    seen[variant]["tokens"][kind].append(answer["tokens"])
                    seen[variant]["steps"][kind].append(answer["steps"])
    fault_us = page_fault_us()
    print(f"memory_ab --paired: engine_cpu.py's requests at {places_count} places, each to {', '.join(variants)} in "
          f"turn, --threads {threads}. CPU ms: what the engine process ran (all its threads; a shared CPU's other "
          f"work is not in it). A page faulted in costs {fault_us:.1f} µs here (a fresh 64 MB mapping written).\n")
    base = variants[0]
    print("| variant | row | wall ms p50 / p90 | CPU ms p50 / p90 | tokens per step | per request against " + base
          + ": wall, CPU (median ratio) | pages faulted in: mean (≈ ms) | answers as " + base + "'s |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in variants:
        for key in ROWS:
            cells = []
            for measure in ("wall ms", "cpu ms"):
                values = seen[variant][measure][key]
                cells.append(f"{statistics.median(values):.0f} / {statistics.quantiles(values, n=10)[8]:.0f}")
            # What each latency bought: answer tokens over denoising steps, all of the row's requests.
            cells.append(f"{sum(seen[variant]['tokens'][key]) / max(sum(seen[variant]['steps'][key]), 1):.2f}")
            if variant == base:
                cells.append("")
            else:
                ratios = [statistics.median(a / b for a, b in zip(seen[variant][m][key], seen[base][m][key]) if b)
                          for m in ("wall ms", "cpu ms")]
                cells.append(", ".join(f"{r - 1:+.1%}" for r in ratios))
            faults = statistics.fmean(seen[variant]["faults"][key])
            cells.append(f"{faults:.0f} (≈ {faults * fault_us / 1000:.0f} ms)")
            same = sum(a == b for a, b in zip(answers[variant][key], answers[base][key]))
            cells.append(f"{same} / {len(answers[base][key])}")
            print(f"| {variant} | {key} | " + " | ".join(cells) + " |")
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
