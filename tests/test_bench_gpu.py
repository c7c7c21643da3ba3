"""bench/gpu.py prints the documented JSON (docs/PERFORMANCE.md), and the one device-check
script runs end to end on a CPU (slow: it runs the seed-shape --quick benchmark)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

REPORT_KEYS = [
    "benchmark",
    "device",
    "torch",
    "triton",
    "threads",
    "preset",
    "seq_len",
    "stride",
    "windows",
    "batch_windows",
    "slot_steps",
    "repeats",
    "quick",
    "engines",
    "full_val_windows",
    "timing",
    "memory",
    "data",
    "results",
    "ratios",
    "abs_delta_val_bpb",
    "targets",
]
RESULT_KEYS = [
    "protocol",
    "engine",
    "windows",
    "seconds",
    "seconds_each_round",
    "windows_per_s",
    "seconds_per_window",
    "projected_full_val_s",
    "peak_memory_mib",
    "val_bpb",
    "engine_info",
]
ENGINE_INFO_KEYS = [
    "device",
    "device_name",
    "precision",
    "attention",
    "compiled",
    "slot_kernel",
    "torch",
]


def test_bench_gpu_prints_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    tiny = "--device cpu --preset tiny --seq-len 128 --stride 32 --windows 3 --batch-windows 2"
    argv = [sys.executable, str(ROOT / "bench" / "gpu.py"), *tiny.split()]
    argv += ["--repeats", "1", "--slot-steps", "2", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == json.loads(out.read_text())
    assert list(report) == REPORT_KEYS
    runs = [f"{p}_{e}" for e in ("fp32", "bf16") for p in ("sliding", "slot", "slot_causal")]
    assert list(report["results"]) == runs
    for name, result in report["results"].items():
        assert list(result) == RESULT_KEYS, name
        assert list(result["engine_info"]) == ENGINE_INFO_KEYS
        assert result["windows"] == 4  # 3 windows, in whole batches of 2
        assert result["projected_full_val_s"] == pytest.approx(645_813 / result["windows_per_s"])
        assert result["engine_info"]["precision"] == result["engine"]
    assert report["engines"] == ["fp32", "bf16"] and report["windows"] == 4
    assert sorted(report["ratios"]) == sorted(
        f"{p}_{e}/sliding_{e}" for e in ("fp32", "bf16") for p in ("slot", "slot_causal")
    )
    assert report["targets"]["engine"] == "bf16"
    assert set(report["targets"]["met"]) == {"sliding", "slot", "slot_causal", "stretch"}
    # the same windows under both precisions: bf16 stays close to fp32
    assert all(delta < 0.05 for delta in report["abs_delta_val_bpb"].values())


def test_bench_gpu_refuses_cuda_without_a_device():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    argv = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cuda"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and "no CUDA device" in done.stderr


@pytest.mark.slow
def test_device_check_dry_run_on_cpu(tmp_path):
    """`DEVICE=cpu bash scripts/device_check.sh` passes (about 2–3 minutes on 2 cores)."""
    env = os.environ | {"DEVICE": "cpu", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "device_check.sh")],
        capture_output=True,
        text=True,
        timeout=420,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and summary["device"] == "cpu"
    assert summary["steps"]["bench"]["status"] == "ok"
    assert summary["steps"]["pytest_gpu"]["status"] == "ok"
    assert summary["steps"]["bench_compiled"]["status"] == "skipped"
    assert summary["bench_gpu"]["targets"]["engine"] == "bf16"
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) <= 8 and "bench_gpu.json" in files
