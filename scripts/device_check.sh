#!/usr/bin/env bash
# The GPU checks of golf-eval, in ONE script that fits a lent device's 8 minutes.
#
# Before (here, with network):   bash scripts/device_wheels.sh     # fills .whl/
# On the device machine:         bash scripts/device_check.sh      # carry .whl along
#   (repo root is the cwd; everything lands under $OUT, whose files come back)
# Dry run on a CPU:              DEVICE=cpu bash scripts/device_check.sh
# Through the device tool: command `bash scripts/device_check.sh`, carry [".whl"],
# timeout_s 500 (the script keeps itself within BUDGET_S = 450 s).
#
# Steps, each under its own `timeout` (clipped to what is left of BUDGET_S), none
# stopping the next one; exit codes and times go to $OUT/summary.json:
#   1. install .whl/*.whl into /tmp/site (pydantic, pytest, ... — the device's Python
#      lacks them); on DEVICE=cpu skipped when pydantic already imports
#   2. env.txt: nvidia-smi, Python, torch, triton, CUDA, flash-attn availability
#   3. pytest -m gpu tests/test_gpu.py                          -> pytest_gpu.log
#   4. bench/gpu.py, fp32 and bf16, 1024 windows               -> bench_gpu.json
#      (DEVICE=cpu: --quick)
#   5. the fused Triton SLOT test, tests/test_slot_triton.py    -> slot_triton.log
#      (on CUDA with TRITON_INTERPRET unset; on DEVICE=cpu under TRITON_INTERPRET=1)
#   6. bench/gpu.py, bf16 compiled, 2048 windows (CUDA only)    -> bench_gpu_compiled.json
#   7. bench/ttt.py: sliding, ttt, ttt-lora, ttt-phased         -> bench_ttt.json
#      (CUDA: seed shape, 16,384 tokens; DEVICE=cpu: tiny preset, --quick)
#   bench/gpu.py's tables and progress go to bench.log.
# At most 8 files under $OUT. The exit code is 0 when every step ran and passed; a step
# skipped by design (install on a CPU with pydantic, compiled bench on a CPU) or whose
# test file is not in the tree yet is recorded, not failed; one the budget left no time
# for ("no_time") fails the run.
#
# Environment: DEVICE (cuda|cpu, default cuda), OUT (default: a new temp dir),
# PYTHON (default python3; .venv/bin/python on DEVICE=cpu when it exists),
# BUDGET_S (default 450: the whole script, under the device's 8 minutes).
set -u

cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-450}
OUT=${OUT:-$(mktemp -d -t golf-device-check.XXXXXX)}
mkdir -p "$OUT"
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    if [ "$DEVICE" = cpu ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; fi
fi
STEPS=()  # "name status rc seconds limit" per step, for summary.json

log() { echo "[device_check $(date +%T) +${SECONDS}s] $*" >&2; }

# run_step NAME LIMIT_S LOG CMD...: CMD with stdout and stderr appended to LOG, under
# `timeout` (LIMIT_S, clipped to the budget left); its result joins STEPS.
run_step() {
    local name=$1 limit=$2 logfile=$3
    shift 3
    local left=$((BUDGET_S - SECONDS - 5))
    if [ "$left" -lt 15 ]; then
        log "$name: not run (budget spent)"
        STEPS+=("$name no_time null 0 0")
        return
    fi
    if [ "$limit" -gt "$left" ]; then limit=$left; fi
    log "$name: $* (timeout ${limit}s)"
    echo "=== $name: $* (timeout ${limit}s)" >>"$logfile"
    local start=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" >>"$logfile" 2>&1 || rc=$?
    local status=ok
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        status=timeout
    elif [ "$rc" -ne 0 ]; then
        status=failed
    fi
    echo "=== $name: exit $rc ($status) after $((SECONDS - start))s" >>"$logfile"
    log "$name: exit $rc ($status)"
    STEPS+=("$name $status $rc $((SECONDS - start)) $limit")
}

skip_step() {  # NAME STATUS WHY
    log "$1: $2 ($3)"
    STEPS+=("$1 $2 null 0 0")
}

# 1. wheels -----------------------------------------------------------------------
export PYTHONPATH=$PWD
if [ "$DEVICE" = cpu ] && "$PYTHON" -c "import pydantic" 2>/dev/null; then
    skip_step install skipped "pydantic already imports"
elif ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "no .whl/*.whl: run scripts/device_wheels.sh first and carry .whl" >>"$OUT/env.txt"
    STEPS+=("install failed 1 0 0")
else
    run_step install 60 "$OUT/env.txt" "$PYTHON" -m pip install -q --no-index --no-deps \
        --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
fi

# 2. environment ------------------------------------------------------------------
{
    echo "=== date: $(date -u +%FT%TZ)  DEVICE=$DEVICE  PYTHONPATH=$PYTHONPATH"
    echo "=== uptime: $(uptime)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
            --format=csv
    else
        echo "nvidia-smi: not found"
    fi
} >>"$OUT/env.txt" 2>&1
run_step versions 60 "$OUT/env.txt" "$PYTHON" - <<'EOF'
import importlib.util
import platform
import sys

import torch

print("python", sys.version.split()[0], platform.machine())
print("torch", torch.__version__, "cuda", torch.version.cuda, "threads", torch.get_num_threads())
for name in ("triton", "pydantic", "pytest", "numpy", "sentencepiece", "safetensors"):
    module = importlib.import_module(name) if importlib.util.find_spec(name) else None
    print(name, getattr(module, "__version__", "missing") if module else "missing")
print("cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
    print("flash sdp", torch.backends.cuda.flash_sdp_enabled(),
          "cudnn sdp", torch.backends.cuda.cudnn_sdp_enabled())
from golf.models.attention import flash_attn_available

print("flash-attn package", flash_attn_available())
EOF

# 3. GPU tests (skip themselves without CUDA) -------------------------------------
run_step pytest_gpu 120 "$OUT/pytest_gpu.log" \
    "$PYTHON" -m pytest -m gpu -q tests/test_gpu.py

# 4. the benchmark: fp32 and bf16 ------------------------------------------------
if [ "$DEVICE" = cpu ]; then
    run_step bench 240 "$OUT/bench.log" \
        "$PYTHON" bench/gpu.py --device cpu --quick --out "$OUT/bench_gpu.json"
else
    run_step bench 180 "$OUT/bench.log" \
        "$PYTHON" bench/gpu.py --device cuda --windows 1024 --out "$OUT/bench_gpu.json"
fi

# 5. the fused Triton SLOT step ---------------------------------------------------
if [ ! -f tests/test_slot_triton.py ]; then
    skip_step slot_triton missing "tests/test_slot_triton.py is not in the tree"
elif [ "$DEVICE" = cpu ]; then
    run_step slot_triton 150 "$OUT/slot_triton.log" \
        env TRITON_INTERPRET=1 "$PYTHON" -m pytest -q tests/test_slot_triton.py
else
    run_step slot_triton 90 "$OUT/slot_triton.log" \
        env -u TRITON_INTERPRET "$PYTHON" -m pytest -q tests/test_slot_triton.py
fi

# 6. the benchmark: bf16 compiled (CUDA only; last, as the step most likely to run long)
if [ "$DEVICE" = cpu ]; then
    skip_step bench_compiled skipped "CUDA only"
else
    run_step bench_compiled 150 "$OUT/bench.log" \
        "$PYTHON" bench/gpu.py --device cuda --engines bf16_compiled \
        --out "$OUT/bench_gpu_compiled.json"
fi

# 7. score-first TTT beside sliding (bench/ttt.py): the seed shape on CUDA; the tiny
# preset on DEVICE=cpu (the seed shape takes minutes on a CPU; docs/PERFORMANCE.md)
if [ "$DEVICE" = cpu ]; then
    run_step bench_ttt 120 "$OUT/bench.log" \
        sh -c "\"$PYTHON\" bench/ttt.py --preset tiny --quick > \"$OUT/bench_ttt.json\""
else
    run_step bench_ttt 150 "$OUT/bench.log" \
        sh -c "\"$PYTHON\" bench/ttt.py --device cuda --tokens 16384 > \"$OUT/bench_ttt.json\""
fi

# summary -------------------------------------------------------------------------
python3 - "$OUT" "$DEVICE" "$SECONDS" "${STEPS[@]}" <<'EOF'
import json
import sys
from pathlib import Path

out, device, seconds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
steps = {}
for line in sys.argv[4:]:
    name, status, rc, took, limit = line.split()
    steps[name] = {
        "status": status,
        "exit_code": None if rc == "null" else int(rc),
        "seconds": int(took),
        "timeout_s": int(limit),
    }
summary = {"device": device, "seconds": seconds, "steps": steps}
for name in ("bench_gpu", "bench_gpu_compiled"):
    path = out / f"{name}.json"
    if path.is_file():
        report = json.loads(path.read_text())
        summary[name] = {
            "device": report["device"],
            "windows_per_s": {k: r["windows_per_s"] for k, r in report["results"].items()},
            "projected_full_val_s": {
                k: r["projected_full_val_s"] for k, r in report["results"].items()
            },
            "ratios": report["ratios"],
            "targets": report["targets"],
        }
ttt = out / "bench_ttt.json"
if ttt.is_file():
    report = json.loads(ttt.read_text())
    summary["bench_ttt"] = {
        k: {"s_per_1k_tokens": r["s_per_1k_tokens"], "ratio_to_sliding": r["ratio_to_sliding"]}
        for k, r in report["protocols"].items()
    }
summary["ok"] = all(s["status"] in ("ok", "skipped", "missing") for s in steps.values())
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
sys.exit(0 if summary["ok"] else 1)
EOF
rc=$?
log "done in ${SECONDS}s; files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit $rc
