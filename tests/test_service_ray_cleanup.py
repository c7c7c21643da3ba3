"""N10 (issue 14): a `kill -9` of `golf serve` left Ray's agents running; the next start
of the service on the same state folder ends what the killed one left."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from service.ray_processes import RECORD, descendants, start_time

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")

BIN = Path(sys.executable).parent


def _serve(root: Path, demo_data: Path, ray_tmp: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / "data").mkdir(exist_ok=True)
    if not (root / "data" / "demo").exists():
        (root / "data" / "demo").symlink_to(demo_data, target_is_directory=True)
    (root / "keys").write_text("key-a alice\n")
    env = os.environ | {
        "GOLF_WORKER_CPUS": "0.1",
        "RAY_TMPDIR": str(ray_tmp),  # short: Ray's socket paths must fit 107 bytes
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    proc = subprocess.Popen(
        [str(BIN / "golf"), "serve", "--port", str(port), "--workers", "1"]
        + ["--data-root", str(root / "data"), "--state-dir", str(root / "state")]
        + ["--api-keys", str(root / "keys")],
        stdout=(root / f"serve-{port}.log").open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, (root / f"serve-{port}.log").read_text()
        assert time.monotonic() < deadline, "service did not start"
        try:
            if httpx.get(f"{url}/healthz", timeout=5).json().get("workers") == 1:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)


def test_a_killed_service_leaves_nothing_after_the_next_start(
    tmp_path: Path, demo_data: Path
) -> None:
    ray_tmp = Path(tempfile.mkdtemp(prefix="gr-", dir="/tmp"))
    first, _ = _serve(tmp_path, demo_data, ray_tmp)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "state" / RECORD).exists():  # recorded after ray.init
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(11)  # one more refresh of the record: the actor is in it too
        left = {pid: start_time(pid) for pid in descendants(first.pid)}
        assert left, "the embedded Ray started no processes?"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    time.sleep(2)
    survivors = [pid for pid, t in left.items() if start_time(pid) == t]
    assert survivors, "nothing survived the kill: the attack did not reproduce"
    second, _ = _serve(tmp_path, demo_data, ray_tmp)
    try:
        still = [pid for pid, t in left.items() if start_time(pid) == t]
        assert still == [], f"left by the killed service: {still} (of {survivors} after kill)"
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=60)
        except subprocess.TimeoutExpired:
            second.kill()
    shutil.rmtree(ray_tmp, ignore_errors=True)
