"""A real two-node Ray cluster on this machine, and the service joined to it.

`ray start --head` and a second `ray start --address …` node (each with one CPU, its own
temp dir and ports, in its own process group), `golf serve --ray-address …` in a
subprocess: the two workers land one per node (the pool's SPREAD strategy), a job's
shards run on both, the second node is stopped mid-job (its processes get SIGTERM, as
`ray stop` would send them there), the lost shard is re-run on the head, and the report
equals `golf eval` in this process, bit for bit.

Run with `pytest -m cluster` (`make test-cluster`); about a minute.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service_support import (
    TERMINAL,
    auth,
    local_reports,
    make_artifact,
    make_settings,
    without_elapsed,
)

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
# Token auth would need a shared token file; these nodes only listen on this machine.
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
PROTOCOLS = ["sliding", "slot"]
PARAMS = {"seq_len": 64, "stride": 32, "batch_windows": 8, "max_windows": 320, "slot_steps": 8}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def process_tree() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process this user can see."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found[int(entry.name)] = (ppid, cmd)
    return found


@dataclass
class Node:
    """One `ray start --block` and the processes it started (raylet, agents, workers)."""

    name: str
    proc: subprocess.Popen
    log: Path

    def descendants(self) -> dict[int, str]:
        tree = process_tree()
        out = {}
        for pid, (_, cmd) in tree.items():
            p = pid
            while p in tree and p != self.proc.pid:
                p = tree[p][0]
            if p == self.proc.pid and pid != p:
                out[pid] = cmd
        return out

    def eval_workers(self) -> list[int]:
        return [pid for pid, cmd in self.descendants().items() if cmd.startswith("ray::EvalWorker")]

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to this node's processes only (actor workers have process groups of
        their own), then SIGKILL to whatever is left after `grace` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [self.proc.pid, *self.descendants()]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
                if not self.descendants():
                    return


def start_node(temp: Path, name: str, args: list[str]) -> Node:
    log = temp / f"{name}.log"
    ports = [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]
    proc = subprocess.Popen(
        [str(BIN / "ray"), "start", "--block", "--num-cpus=1", "--disable-usage-stats"]
        + ["--object-store-memory=100000000", f"--temp-dir={temp / name}", *ports, *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=ENV,
    )
    node = Node(name, proc, log)
    deadline = time.monotonic() + 90
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"ray node {name} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return node


@pytest.fixture
def cluster() -> Iterator[tuple[str, Node, Node]]:
    """(address, head, node2): a head and a second node, one CPU each."""
    # Ray's unix sockets live under the temp dir and must fit 107 bytes: keep it short.
    temp = Path(tempfile.mkdtemp(prefix="golfrc", dir="/tmp"))
    nodes: list[Node] = []
    try:
        head = start_node(
            temp,
            "head",
            ["--head", f"--port={free_port()}", "--include-dashboard=false"]
            + [f"--dashboard-port={free_port()}", '--resources={"head": 1}'],
        )
        nodes.append(head)
        found = re.search(r"ray start --address='([^']+)'", head.log.read_text())
        assert found, head.log.read_text()
        address = found.group(1)
        node2 = start_node(temp, "node2", [f"--address={address}", '--resources={"node2": 1}'])
        nodes.append(node2)
        yield address, head, node2
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def golf_serve(root: Path, demo_data: Path, address: str) -> Iterator[str]:
    """`golf serve --ray-address` in a subprocess (the test process may hold a local
    Ray of its own); its URL once both workers answer."""
    settings = make_settings(root, demo_data)
    port = free_port()
    env = ENV | {
        "GOLF_WORKER_CPUS": "0.5",  # both fit the head once node2 is gone
        "GOLF_WORKER_THREADS": "1",  # as this process's golf eval (tests/conftest.py)
        "GOLF_BATCHES_PER_SHARD": "1",
    }
    log = root / "serve.log"
    proc = subprocess.Popen(
        [str(BIN / "golf"), "serve", "--port", str(port), "--workers", "2"]
        + ["--ray-address", address, "--data-root", str(settings.data_root)]
        + ["--state-dir", str(settings.state_dir), "--api-keys", str(settings.api_keys)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "service not ready:\n" + log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=5).json().get("workers") == 2:
                    break
            time.sleep(0.3)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shards(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/jobs/{job_id}/shards", params={"limit": 10_000})
    return response.raise_for_status().json()["shards"]


def test_job_survives_losing_a_node(
    cluster: tuple[str, Node, Node], demo_data: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    address, head, node2 = cluster
    artifact = make_artifact(demo_data, tmp_path / "model.golf")
    expected = without_elapsed(local_reports(artifact, demo_data, PROTOCOLS, PARAMS))
    with golf_serve(tmp_path, demo_data, address) as url:
        # One actor per node: SPREAD placed them apart (each node could hold both).
        assert len(head.eval_workers()) == 1
        assert len(node2.eval_workers()) == 1
        with httpx.Client(base_url=url, headers=auth("alice"), timeout=30) as client:
            files = {"file": ("model.golf", artifact.read_bytes())}
            sha = client.post("/v1/artifacts", files=files).raise_for_status().json()["id"]
            body = {"artifact": sha, "dataset": "demo", "protocols": PROTOCOLS, "params": PARAMS}
            job_id = client.post("/v1/jobs", json=body).raise_for_status().json()["id"]

            # Both workers (so both nodes) finish shards; then node2 goes, mid-job.
            deadline = time.monotonic() + 60
            while True:
                done = [s for s in shards(client, job_id) if s["state"] == "done"]
                if {s["worker"] for s in done} == {"worker-0", "worker-1"}:
                    break
                assert time.monotonic() < deadline, f"shards did not reach both nodes: {done}"
                time.sleep(0.05)
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["state"] == "running", "the job ended before node2 could be stopped"
            left = job["progress"]["windows_total"] - job["progress"]["windows_done"]
            node2.stop()
            assert node2.proc.poll() is not None and not node2.descendants()

            deadline = time.monotonic() + 120
            while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in TERMINAL:
                assert time.monotonic() < deadline, f"job stuck after losing node2: {job}"
                time.sleep(0.2)
            assert job["state"] == "succeeded", job["error"]
            final = shards(client, job_id)
            report = client.get(f"/v1/jobs/{job_id}/report").json()
            # The shard node2 held was lost and run again; its worker's replacement
            # starts on the head (the job may well have finished without it).
            assert any(s["attempts"] >= 2 for s in final), final
            deadline = time.monotonic() + 60
            while client.get("/healthz").json()["workers"] < 2:
                assert time.monotonic() < deadline, "node2's worker was not replaced"
                time.sleep(0.2)
        assert len(head.eval_workers()) == 2
    assert without_elapsed(report["reports"]) == expected
    print(
        f"\ncluster test: node2 stopped with {left} windows left;"
        f" {sum(s['attempts'] for s in final) - len(final)} shard re-runs;"
        f" {time.monotonic() - started:.1f} s"
    )
