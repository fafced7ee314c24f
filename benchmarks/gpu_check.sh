#!/usr/bin/env bash
# The GPU checks, for a machine with a CUDA device and a CUDA build of torch (plus pytest; jax optional):
# the CUDA tests of tg.trace(..., cuda_graph=True), the trace executor tests on this torch, then the
# GPU section of `tapegrad bench`: every case without torch.compile, then the seed network with it
# (torch.compile default and reduce-overhead, and the traced step with executor="inductor"). Each
# timed block of the bench is between two torch.cuda.synchronize() calls, and each row prints the
# TFLOP/s its time implies. Each step has its own time limit (7.1 minutes in all at worst); every line is
# printed, and copied into "$OUT/gpu_check.log" when OUT is set.
#
#   bash benchmarks/gpu_check.sh            (from the repository root; no install needed)
set -u
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
LOG="$(mktemp)"
STUB=""
if ! "$PY" -c "import safetensors.torch" >/dev/null 2>&1; then
    # nn imports safetensors (checkpoints) at import time; nothing here saves one: a stub that
    # raises if used lets nn import where the package is missing
    STUB="$(mktemp -d)"
    mkdir -p "$STUB/safetensors"
    : >"$STUB/safetensors/__init__.py"
    printf '%s\n' "def _missing(*args, **kwargs):" \
        "    raise ImportError('safetensors is not installed (stub of benchmarks/gpu_check.sh)')" \
        "def __getattr__(name):" "    return _missing" >"$STUB/safetensors/torch.py"
    export PYTHONPATH="$PYTHONPATH:$STUB"
fi

step() {  # step SECONDS COMMAND...: run it with a limit, say how it ended
    local limit="$1"
    shift
    echo
    echo "=== $* (limit ${limit}s) ==="
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    [ "$rc" = 124 ] && echo "!!! stopped after ${limit}s (the time limit)"
    echo "=== exit status $rc after $((SECONDS - start))s ==="
}

{
    date -u
    [ -n "$STUB" ] && echo "(safetensors is missing: a stub stands in for it, checkpoints are not used here)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "(no nvidia-smi)"
    step 20 "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
    step 60 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda_graph.py
    step 45 "$PY" -m pytest -q -p no:cacheprovider -x tests/test_trace_replay.py tests/test_recycle.py
    step 120 "$PY" -m tapegrad bench --only gpu --gpu-rounds 5 --no-compile
    step 180 "$PY" -m tapegrad bench --only gpu --gpu-rounds 5 --gpu-cases seed
    date -u
} 2>&1 | tee "$LOG"

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" && cp "$LOG" "$OUT/gpu_check.log" && echo "(a copy of this output: $OUT/gpu_check.log)"
fi
rm -f "$LOG"
[ -n "$STUB" ] && rm -rf "$STUB"
exit 0
