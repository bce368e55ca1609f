#!/usr/bin/env bash
# What one lent GPU session runs, in at most two calls (the machine has torch and triton but not our
# dependencies, and no network: the checkout is installed without them).
#
#   bench/gpu_session.sh check           # GPU tests, bench/gpu_step.py, a short training smoke run (~4 min)
#   bench/gpu_session.sh train MINUTES   # the bundled model's training run; the model folder to $OUT/model
#   bench/gpu_session.sh train MINUTES --init-from mercury_lsp/models/default   # ... continuing the shipped model
#
# Every output lands under $OUT (the folder the device tool sends back), default /tmp/mercury-gpu.
set -uo pipefail
OUT=${OUT:-/tmp/mercury-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-index --no-build-isolation . >"$OUT/pip.log" 2>&1 || { cat "$OUT/pip.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader

case "${1:-}" in
check)
    # The engine's tests on the GPU (the model then runs the Triton kernels through the dispatcher); -P keeps the
    # checkout's mercury_lsp/ (which lacks engine/ and kernels/) from shadowing the installed package.
    timeout 90 python3 -P -m pytest -q -x -p no:cacheprovider tests/test_kernel_gpu.py tests/engine 2>&1 | tail -25
    timeout 120 python3 bench/gpu_step.py --reps 10 --out "$OUT/gpu_step.md"
    echo "gpu_step exit $?"
    # A tiny corpus, a few steps of each objective: compiles both graphs (the cache serves the real run) and
    # proves the loader workers and the sharded export.
    timeout 150 python3 bench/train_gpu.py --minutes 0.4 --warm-start-minutes 0.1 --work-dir /tmp/smoke \
        --export "$OUT/smoke" --roots "$(python3 -c 'import json, os; print(os.path.dirname(json.__path__[0]))')/asyncio" \
        2>&1 | tail -12
    ls -la "$OUT/smoke" && rm -rf "$OUT/smoke"
    ;;
train)
    minutes=${2:?minutes}
    rm -rf runs/gpu
    python3 bench/train_gpu.py --minutes "$minutes" --warm-start-minutes 1.0 --work-dir runs/gpu \
        --export "$OUT/model" "${@:3}" 2> >(tee "$OUT/train.log" >&2)
    rm -f "$OUT/model/tokenizer.json"  # the bundled one: the run reuses it
    ;;
*)
    echo "usage: $0 check | train MINUTES" >&2
    exit 2
    ;;
esac
