#!/bin/bash
# One GPU session for the Triton kernels, on a fresh CUDA machine with torch and triton already
# installed and no internet: the Triton tests run natively (tests/test_flash_triton.py), then
# bench/flash_gpu.py --quick, then --quick once more to show that compiled kernels and
# autotuning timings are reused from the on-disk cache. Everything lands in $OUT. attnlab is
# used from this working tree (PYTHONPATH=lib:.), nothing is installed.
#
#   bash bench/gpu_session.sh --prepare   # here, once: pure-Python pytest, pytest-timeout and
#                                         # tqdm into .venv/device-deps, for a machine that lacks
#                                         # them (carry .venv/device-deps with the tree)
#   bash bench/gpu_session.sh             # on the GPU machine, from the repository root
#
# Budget: under 9 minutes in all (each step has its own time limit; a step that runs out is
# recorded in $OUT/timings.txt and the next one still runs).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=.venv/device-deps

if [[ "${1:-}" == "--prepare" ]]; then
    rm -rf "$DEPS"
    # Pure-Python wheels, pytest's dependencies named one by one (with --no-deps) so that
    # nothing torch also needs (typing_extensions) is shadowed; tomli and exceptiongroup are
    # for a Python 3.10 there.
    "${PYTHON:-.venv/bin/python}" -m pip install --quiet --no-deps --target "$DEPS" \
        --python-version 3.10 --only-binary=:all: pytest pluggy iniconfig packaging pygments \
        pytest-timeout tqdm tomli exceptiongroup
    du -sh "$DEPS"
    exit
fi

OUT=${OUT:-$ROOT/gpu-session-out}
mkdir -p "$OUT"
START=$(date +%s)
TIMINGS=$OUT/timings.txt
: >"$TIMINGS"

# The Python that has torch (the machine's, not a virtual environment of this tree).
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then
            PY=$candidate
            break
        fi
    done
fi
[[ -n "$PY" ]] || { echo "no python with torch found" | tee "$OUT/env.txt"; exit 1; }

export PYTHONPATH="$ROOT/lib:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import pytest, pytest_timeout, tqdm" 2>/dev/null; then
    if [[ -d "$DEPS" ]]; then
        export PYTHONPATH="$PYTHONPATH:$ROOT/$DEPS"
    else
        echo "warning: pytest, pytest-timeout or tqdm missing and no $DEPS" >&2
    fi
fi
unset TRITON_INTERPRET  # natively on the GPU (tests/conftest.py would also decide so)
# Compiled kernels and autotuning timings, shared by the steps below.
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/attnlab-triton-cache}

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    "$PY" - <<'EOF'
import sys, numpy, torch, triton
print("python", sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__,
      "triton", triton.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
    echo "PYTHONPATH=$PYTHONPATH TRITON_CACHE_DIR=$TRITON_CACHE_DIR"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, record the time.
step() {
    local name=$1 limit=$2 t0 rc
    shift 2
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "$name: rc=$rc $(( $(date +%s) - t0 )) s (limit $limit s)" | tee -a "$TIMINGS"
    tail -n 25 "$OUT/$name.log"
}

step tests 230 "$PY" -m pytest tests/test_flash_triton.py -p no:cacheprovider -v \
    --durations=15 --junitxml="$OUT/tests.xml"
step bench_quick 200 "$PY" bench/flash_gpu.py --quick --out "$OUT/flash_gpu_quick.md" \
    --configs-out "$OUT/flash_gpu_quick_configs.json"
# Again, now with a warm cache; only if there is time left in the 9 minutes.
left=$(( 500 - ($(date +%s) - START) ))
if (( left > 40 )); then
    step bench_quick_cached "$left" "$PY" bench/flash_gpu.py --quick \
        --out "$OUT/flash_gpu_quick_cached.md"
else
    echo "bench_quick_cached: skipped, ${left} s left" | tee -a "$TIMINGS"
fi

# The autotuner's on-disk results (small JSON files), named by their cache directory.
mkdir -p "$OUT/autotune-cache"
find "$TRITON_CACHE_DIR" -name '*.autotune.json' 2>/dev/null | while read -r f; do
    cp "$f" "$OUT/autotune-cache/$(basename "$(dirname "$f")" | cut -c1-12)-$(basename "$f")"
done
echo "total: $(( $(date +%s) - START )) s" | tee -a "$TIMINGS"
