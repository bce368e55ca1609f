#!/usr/bin/env bash
# What one lent GPU session runs, in at most two calls (the machine has torch, triton, aiohttp and pytest but not
# our other dependencies, and no network: the checkout is installed without them).
#
#   bench/gpu_session.sh check           # the engine's tests on the GPU, bench/gpu_step.py, next_edit.py's 0.5B speed (~6 min)
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
    # The GPU tests (kernels at real shapes, CUDA-graph replay vs eager, no capture after warm-up, flat memory)
    # and the rest of the engine's tests, which pin the CPU. -P keeps the checkout's mercury_lsp/ (which lacks
    # engine/ and kernels/) from shadowing the installed package.
    timeout 150 python3 -P -m pytest -q -x -p no:cacheprovider tests/test_kernel_gpu.py tests/engine 2>&1 \
        | tee "$OUT/pytest_gpu.log" | tail -25
    echo "pytest exit ${PIPESTATUS[0]}"
    timeout 240 python3 bench/gpu_step.py --reps 10 --out "$OUT/gpu_step.md"
    echo "gpu_step exit $?"
    timeout 120 python3 bench/next_edit.py --random 0.5b --device cuda --sweep | tee "$OUT/next_edit_05b.md"
    echo "next_edit exit ${PIPESTATUS[0]}"
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
