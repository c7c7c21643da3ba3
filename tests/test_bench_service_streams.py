"""bench/service_streams.py runs the real service (SIMULATED scorer) with open event
streams end to end and prints the JSON docs/PERFORMANCE.md quotes; a small run here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_small_run_prints_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "streams.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "service_streams.py"), "--streams", "12"]
        + ["--windows", "3000", "--workers", "1", "--rate", "1000", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "service_streams" and "synthetic" in result["simulation"]
    loud = result["with_streams"]
    assert loud["stream_clients"] == {
        "open": 12,
        "refused": 0,
        "events": loud["stream_clients"]["events"],
        "reports": 12,
    }
    assert loud["stream_clients"]["events"] >= 2 * 12  # progress, then the report
    for run in [*result["without_streams"], loud]:
        assert 2900 < run["windows"] <= 3000 and run["windows_per_s"] > 0
        assert run["healthz"]["n"] > 0
    assert set(result["targets_met"]) == {"healthz_p99<=100ms", "throughput_loss<=10%"}
