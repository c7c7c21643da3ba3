"""Service at full scale with a SIMULATED scorer: ingest rate, SQLite size, API latency.

SIMULATION: the workers run `GOLF_WORKER_SCORER=synthetic` (workers/synthetic.py): they
load no model and return made-up window records (the plan's real windows and token
counts, deterministic NLL and bytes, valid checksums), as fast as they can. Everything
else is the real service: `golf serve` in a subprocess (uvicorn, embedded Ray, real
actors, SQLite), driven over HTTP. It measures what a full FineWeb-val job costs the
service itself, not the evaluation:

- ingest: window records stored per second (all jobs together), overall and sustained
  (between 10 % and 90 % of the windows);
- SQLite: database (+ WAL) bytes per million stored windows;
- report latency: from a job's last record stored to its report (job `succeeded`);
- p50/p99 of `GET /v1/jobs/{id}` and `GET /healthz`, sampled during ingest.

Default: 8 jobs from 4 owners, each sliding + slot + slot-causal at L 2048, stride 96
over a synthetic 62M-token val shard (645,804 windows per protocol: FineWeb val's
size). `--quick` runs 8 small jobs (3 × 983 windows each) in well under a minute.

    .venv/bin/python bench/service_scale.py [--quick] [--jobs 8] [--owners 4] \
        [--workers 4] [--val-tokens 62000001] [--out docs/perf/service_scale.json]
"""

# ruff: noqa: E402  (the path fix below must precede the imports)
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx
import numpy as np
from rich.console import Console

from golf.data.demo import build_demo
from golf.data.shards import Dataset, write_shard
from golf.formats.artifact import random_artifact
from golf.spec.config import preset

BIN = Path(sys.executable).parent
PROTOCOLS = ["sliding", "slot", "slot-causal"]
PARAMS = {"seq_len": 2048, "stride": 96}
FULL_VAL_TOKENS = 62_000_001
QUICK_VAL_TOKENS = 2048 + 96 * 1_000  # 1,000 windows per protocol
KEYS = "keys"


def log(message: str) -> None:
    print(f"[service_scale, SIMULATED scorer] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_dataset(root: Path, val_tokens: int) -> Dataset:
    """A dataset folder: the demo tokenizer and one synthetic val shard of `val_tokens`
    random token ids (only the count matters to the simulated scorer)."""
    demo = root / "demo"
    build_demo(demo, console=Console(quiet=True), max_chars=300_000, val_chars=50_000)
    folder = root / "data" / "scale"
    folder.mkdir(parents=True)
    (folder / "tokenizer.model").symlink_to((demo / "tokenizer.model").resolve())
    vocab = Dataset.open(demo).vocab_size
    tokens = np.random.default_rng(0).integers(0, vocab, val_tokens, dtype=np.uint16)
    write_shard(folder / "scale_val_000000.bin", tokens)
    return Dataset.open(folder)


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(1000 * s for s in samples)
    if not ms:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
        "max_ms": round(ms[-1], 2),
    }


class Sampler(threading.Thread):
    """Times `GET /healthz` and `GET /v1/jobs/{id}` (jobs in turn) every `interval` s."""

    def __init__(self, url: str, jobs: list[tuple[str, str]], interval: float):
        super().__init__(daemon=True)
        self.url, self.jobs, self.interval = url, jobs, interval
        self.times: dict[str, list[tuple[float, float]]] = {"healthz": [], "job": []}
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                job_id, key = self.jobs[i % len(self.jobs)]
                for name, path, headers in (
                    ("healthz", "/healthz", {}),
                    ("job", f"/v1/jobs/{job_id}", {"Authorization": f"Bearer {key}"}),
                ):
                    at, started = time.time(), time.perf_counter()
                    client.get(path, headers=headers).raise_for_status()
                    self.times[name].append((at, time.perf_counter() - started))
                i += 1
                self.stop.wait(self.interval)


def serve(root: Path, workers: int, profile: Path | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {
        "GOLF_WORKER_SCORER": "synthetic",  # SIMULATION: no model is evaluated
        "GOLF_WORKER_CPUS": "0.1",
        "GOLF_OWNER_BUDGET": "1e15",
        "GOLF_MAX_JOB_COST": "1e15",
        "RAY_TMPDIR": str(root / "ray"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    (root / "ray").mkdir()
    # --profile: cProfile of the service's main thread (its event loop), written at exit.
    prefix = [sys.executable, "-m", "cProfile", "-o", str(profile.resolve())] if profile else []
    proc = subprocess.Popen(
        [*prefix, str(BIN / "golf"), "serve", "--port", str(port), "--workers", str(workers)]
        + ["--data-root", str(root / "data"), "--state-dir", str(root / "state")]
        + ["--api-keys", str(root / KEYS)],
        stdout=(root / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("service did not start:\n" + (root / "serve.log").read_text())
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=5).json().get("workers") == workers:
                return proc, url
        time.sleep(0.5)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    owners = [f"owner{i}" for i in range(args.owners)]
    (root / KEYS).write_text("".join(f"key-{o} {o}\n" for o in owners) + "key-admin ops admin\n")
    started = time.perf_counter()
    dataset = make_dataset(root, args.val_tokens)
    artifact = root / "tiny.golf"
    config = preset("tiny").replace(vocab_size=dataset.vocab_size)
    random_artifact(config, dataset.tokenizer_sha256, dataset.vocab_size, artifact)
    log(f"dataset of {args.val_tokens:,} val tokens in {time.perf_counter() - started:.1f} s")

    proc, url = serve(root, args.workers, args.profile)
    admin = {"Authorization": "Bearer key-admin"}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for owner in owners:
                files = {"file": ("tiny.golf", artifact.read_bytes())}
                headers = {"Authorization": f"Bearer key-{owner}"}
                response = client.post("/v1/artifacts", files=files, headers=headers)
                sha = response.raise_for_status().json()["id"]
            jobs: list[tuple[str, str]] = []
            submitted = time.perf_counter()
            for i in range(args.jobs):
                key = f"key-{owners[i % len(owners)]}"
                body = {"artifact": sha, "dataset": "scale", "protocols": PROTOCOLS}
                response = client.post(
                    "/v1/jobs",
                    json=body | {"params": PARAMS},
                    headers={"Authorization": f"Bearer {key}"},
                )
                jobs.append((response.raise_for_status().json()["id"], key))
            submit_s = time.perf_counter() - submitted
            sampler = Sampler(url, jobs, args.sample_interval)
            sampler.start()

            # Follow every job through the admin's job list (one request a poll).
            total: int | None = None
            series: list[tuple[float, int]] = []
            done_at: dict[str, float] = {}
            succeeded_at: dict[str, float] = {}
            starts: dict[str, float] = {}
            ids = {job_id for job_id, _ in jobs}
            while len(succeeded_at) < len(ids):
                if args.max_seconds and time.perf_counter() - submitted > args.max_seconds:
                    log(f"stopping after {args.max_seconds} s (--max-seconds): partial figures")
                    break
                listed = [
                    j
                    for j in client.get("/v1/jobs", headers=admin).json()["jobs"]
                    if j["id"] in ids
                ]
                now = time.time()  # the clock of the jobs' started_at
                total = sum(j["progress"]["windows_total"] for j in listed)
                series.append((now, sum(j["progress"]["windows_done"] for j in listed)))
                for j in listed:
                    p = j["progress"]
                    if p["windows_done"] == p["windows_total"]:
                        done_at.setdefault(j["id"], now)
                    if j["started_at"] is not None:
                        starts[j["id"]] = j["started_at"]
                    if j["state"] == "succeeded":
                        succeeded_at.setdefault(j["id"], now)
                    elif j["state"] in ("failed", "cancelled"):
                        raise RuntimeError(f"job {j['id']} {j['state']}: {j['error']}")
                if len(series) % 40 == 0:
                    log(f"{series[-1][1]:,} / {total:,} windows stored")
                time.sleep(args.poll)
            sampler.stop.set()
            sampler.join()
            job_id, key = jobs[0]
            engine = {"device_name": None}
            if job_id in succeeded_at:
                report = client.get(
                    f"/v1/jobs/{job_id}/report", headers={"Authorization": f"Bearer {key}"}
                ).json()
                engine = report["reports"][0]["engine"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert total is not None
    db_bytes = sum(f.stat().st_size for f in (root / "state").glob("golf.sqlite*") if f.is_file())

    def first(at_least: float) -> float:
        return next(t for t, n in series if n >= at_least)

    complete = len(succeeded_at) == len(ids)
    stored = series[-1][1]
    started_t = min(starts.values())  # the first shard's dispatch, as the service saw it
    last_t = max(done_at.values()) if complete else series[-1][0]
    lo, hi = first(0.1 * stored), first(0.9 * stored)
    latencies = [succeeded_at[j] - done_at[j] for j in ids if j in succeeded_at and j in done_at]
    result = {
        "benchmark": "service_scale",
        "simulation": "synthetic scorer (workers/synthetic.py): no model is loaded or "
        "evaluated; records are made up from the window index",
        "quick": args.quick,
        "jobs": args.jobs,
        "owners": args.owners,
        "workers": args.workers,
        "protocols": PROTOCOLS,
        "params": PARAMS,
        "val_tokens": args.val_tokens,
        "windows_per_protocol": total // (args.jobs * len(PROTOCOLS)),
        "windows_total": total,
        "windows_stored": stored,
        "complete": complete,
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "submit_s": round(submit_s, 3),
        "ingest_s": round(last_t - started_t, 2),
        "windows_per_s": round(stored / max(last_t - started_t, 1e-9)),
        "sustained_windows_per_s": round(0.8 * stored / max(hi - lo, 1e-9)),
        "sqlite_bytes": db_bytes,
        "sqlite_bytes_per_million_windows": round(db_bytes / max(stored, 1) * 1e6),
        "report_latency_s": {
            "median": round(statistics.median(latencies), 2) if latencies else None,
            "max": round(max(latencies), 2) if latencies else None,
            "resolution_s": args.poll,
        },
        # During ingest (first dispatch to last record), and while reports are built.
        "get_job": percentiles([s for t, s in sampler.times["job"] if t <= last_t]),
        "healthz": percentiles([s for t, s in sampler.times["healthz"] if t <= last_t]),
        "get_job_after_ingest": percentiles([s for t, s in sampler.times["job"] if t > last_t]),
        "healthz_after_ingest": percentiles([s for t, s in sampler.times["healthz"] if t > last_t]),
        "report_engine": engine["device_name"],
    }
    result["targets_met"] = {
        "windows_per_s>=20000": result["sustained_windows_per_s"] >= 20_000,
        "get_job_p99<=100ms": (result["get_job"]["p99_ms"] or 1e9) <= 100,
        "healthz_p99<=100ms": (result["healthz"]["p99_ms"] or 1e9) <= 100,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 small jobs: under 2 minutes")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--owners", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="simulated workers (actors)")
    parser.add_argument("--val-tokens", type=int, help=f"default {FULL_VAL_TOKENS:,}")
    parser.add_argument("--poll", type=float, default=0.2, help="progress poll interval, s")
    parser.add_argument("--sample-interval", type=float, default=0.1, help="latency probes, s")
    parser.add_argument("--keep", type=Path, help="keep the state here (default: temp dir)")
    parser.add_argument("--max-seconds", type=float, help="stop following jobs after this")
    parser.add_argument("--profile", type=Path, help="cProfile the service into this file")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.val_tokens is None:
        args.val_tokens = QUICK_VAL_TOKENS if args.quick else FULL_VAL_TOKENS
    log("SIMULATION: workers return synthetic window records; no model is evaluated")
    if args.keep:
        args.keep.mkdir(parents=True)
        result = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="golfss") as tmp:
            result = run(args, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
