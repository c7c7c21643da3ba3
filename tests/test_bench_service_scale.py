"""bench/service_scale.py --quick runs the real service with the SIMULATED (synthetic)
scorer end to end and prints the JSON documented in docs/PERFORMANCE.md."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KEYS = {
    "benchmark",
    "simulation",
    "quick",
    "jobs",
    "owners",
    "workers",
    "protocols",
    "params",
    "val_tokens",
    "windows_per_protocol",
    "windows_total",
    "windows_stored",
    "complete",
    "cpus",
    "load_avg",
    "submit_s",
    "ingest_s",
    "windows_per_s",
    "sustained_windows_per_s",
    "sqlite_bytes",
    "sqlite_bytes_per_million_windows",
    "report_latency_s",
    "get_job",
    "healthz",
    "get_job_after_ingest",
    "healthz_after_ingest",
    "report_engine",
    "targets_met",
}


def test_quick_run_reports_the_documented_figures() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "service_scale.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SIMULATED scorer" in run.stderr  # the logs say what this is
    result = json.loads(run.stdout)
    assert set(result) == KEYS
    assert result["benchmark"] == "service_scale" and result["quick"] is True
    assert "synthetic" in result["simulation"] and "SIMULATION" in result["report_engine"]
    assert result["complete"] and result["windows_stored"] == result["windows_total"]
    assert result["windows_total"] == 8 * 3 * result["windows_per_protocol"] > 0
    assert result["windows_per_s"] > 0 and result["sqlite_bytes_per_million_windows"] > 0
    assert result["report_latency_s"]["max"] is not None
    for probe in ("get_job", "healthz"):
        assert {"n", "p50_ms", "p99_ms", "max_ms"} <= set(result[probe])
    assert set(result["targets_met"]) == {
        "windows_per_s>=20000",
        "get_job_p99<=100ms",
        "healthz_p99<=100ms",
    }
