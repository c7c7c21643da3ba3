"""Open event streams vs the event loop: /healthz latency and ingest with 300 SSE streams.

SIMULATION: the workers run the synthetic scorer at a fixed pace (workers/synthetic.py,
`synthetic:RATE` windows/s each): no model is evaluated, so the windows/s measured is
what the service itself sustains, and any stall of its event loop shows as lost
windows/s. Everything else is the real service: `golf serve` in a subprocess (uvicorn,
embedded Ray, SQLite), driven over HTTP on 127.0.0.1.

Three jobs of the same size run one after the other: with no stream open, with
`--streams` clients following `GET /v1/jobs/{id}/events` for the whole run (one
separate process, at `--nice` 10 by default, so that on a small machine the clients'
own CPU does not pass for the service's), and with none again; the baseline is the
mean of the two quiet runs, so a drift of the machine's load shows as their
difference. For each: `/healthz` p50/p99 sampled every 50 ms, and windows/s (first to
last stored window). Targets: /healthz p99 ≤ 100 ms with the streams open, and
≤ 10 % fewer windows/s than without.

    .venv/bin/python bench/service_streams.py [--streams 300] [--windows 60000] \
        [--workers 2] [--rate 1500] [--out docs/perf/service_streams.json]
"""

# ruff: noqa: E402  (the path fix below must precede the imports)
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])

import httpx

from bench.service_scale import BIN, free_port, make_dataset, percentiles
from golf.formats.artifact import random_artifact
from golf.spec.config import preset

STRIDE, SEQ_LEN = 96, 2048
KEY = "key-bench"

# The stream clients: one asyncio process, N streams read to the end and discarded.
CLIENTS = """
import asyncio, json, os, sys
import httpx

url, job, key, n, nice = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
os.nice(nice)

async def follow(client, counts):
    async with client.stream("GET", f"/v1/jobs/{job}/events",
                             headers={"Authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            counts["refused"] += 1
            return
        counts["open"] += 1
        tail = b""
        async for chunk in r.aiter_raw():  # bytes only: the clients cost little CPU
            text = tail + chunk
            counts["events"] += text.count(b"\\nevent: ") - tail.count(b"\\nevent: ")
            counts["reports"] += text.count(b"event: report") - tail.count(b"event: report")
            tail = text[-16:]

async def main():
    counts = {"open": 0, "refused": 0, "events": 0, "reports": 0}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as client:
        tasks = [asyncio.create_task(follow(client, counts)) for _ in range(n)]
        while counts["open"] + counts["refused"] < n:
            await asyncio.sleep(0.05)
        print("OPEN", flush=True)
        await asyncio.gather(*tasks)
    print(json.dumps(counts), flush=True)

asyncio.run(main())
"""


def log(message: str) -> None:
    print(f"[service_streams, SIMULATED scorer] {message}", file=sys.stderr, flush=True)


class Prober(threading.Thread):
    """Times `GET /healthz` every `interval` s until stopped."""

    def __init__(self, url: str, interval: float = 0.05):
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.seconds: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                client.get("/healthz").raise_for_status()
                self.seconds.append(time.perf_counter() - started)
                self.stop.wait(self.interval)


def serve(root: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {
        "GOLF_WORKER_SCORER": f"synthetic:{args.rate}",  # SIMULATION: no model is evaluated
        "GOLF_WORKER_CPUS": "0.1",
        "GOLF_OWNER_BUDGET": "1e15",
        "GOLF_MAX_JOB_COST": "1e15",
        "GOLF_MAX_STREAMS_PER_OWNER": str(args.streams + 10),
        "GOLF_MAX_STREAMS": str(args.streams + 10),
        "RAY_TMPDIR": str(root / "ray"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    (root / "ray").mkdir()
    proc = subprocess.Popen(
        [str(BIN / "golf"), "serve", "--port", str(port), "--workers", str(args.workers)]
        + ["--data-root", str(root / "data"), "--state-dir", str(root / "state")]
        + ["--api-keys", str(root / "keys")],
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
            if httpx.get(f"{url}/healthz", timeout=5).json().get("workers") == args.workers:
                return proc, url
        time.sleep(0.5)


def run_job(
    client: httpx.Client, url: str, sha: str, args: argparse.Namespace, streams: int
) -> dict[str, Any]:
    """Submit one job, optionally with `streams` followers, and time it to its report."""
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {
        "artifact": sha,
        "dataset": "scale",
        "protocols": ["sliding"],
        "params": {"seq_len": SEQ_LEN, "stride": STRIDE, "max_windows": args.windows},
    }
    job = client.post("/v1/jobs", json=body, headers=headers).raise_for_status().json()
    followers = None
    if streams:
        followers = subprocess.Popen(
            [sys.executable, "-c", CLIENTS, url, job["id"], KEY, str(streams), str(args.nice)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert followers.stdout is not None
        assert followers.stdout.readline().strip() == "OPEN"
    prober = Prober(url)
    prober.start()
    series: list[tuple[float, int]] = []
    while True:
        doc = client.get(f"/v1/jobs/{job['id']}", headers=headers).raise_for_status().json()
        series.append((time.perf_counter(), doc["progress"]["windows_done"]))
        if doc["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    prober.stop.set()
    prober.join()
    assert doc["state"] == "succeeded", doc["error"]
    counts = None
    if followers is not None:
        out, _ = followers.communicate(timeout=120)
        counts = json.loads(out.strip().splitlines()[-1])
    moving = [(t, n) for t, n in series if 0 < n < doc["progress"]["windows_total"]]
    (t0, n0), (t1, n1) = moving[0], moving[-1]
    return {
        "streams": streams,
        "windows": doc["progress"]["windows_total"],
        "windows_per_s": round((n1 - n0) / max(t1 - t0, 1e-9)),
        "healthz": percentiles(prober.seconds),
        "stream_clients": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--windows", type=int, default=60_000, help="windows per job")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=1500, help="windows/s per simulated worker")
    parser.add_argument(
        "--nice",
        type=int,
        default=10,
        help="niceness of the stream clients' process (they share this machine's cores)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="golf-streams-") as tmp:
        root = Path(tmp)
        (root / "keys").write_text(f"{KEY} bench\n")
        dataset = make_dataset(root, SEQ_LEN + STRIDE * args.windows + 1)
        artifact = root / "tiny.golf"
        config = preset("tiny").replace(vocab_size=dataset.vocab_size)
        random_artifact(config, dataset.tokenizer_sha256, dataset.vocab_size, artifact)
        proc, url = serve(root, args)
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                files = {"file": ("tiny.golf", artifact.read_bytes())}
                response = client.post(
                    "/v1/artifacts", files=files, headers={"Authorization": f"Bearer {KEY}"}
                )
                sha = response.raise_for_status().json()["id"]
                log("job without streams")
                before = run_job(client, url, sha, args, 0)
                log(f"job with {args.streams} streams")
                loud = run_job(client, url, sha, args, args.streams)
                log("job without streams, again")
                after = run_job(client, url, sha, args, 0)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    baseline = (before["windows_per_s"] + after["windows_per_s"]) / 2
    loss = 1 - loud["windows_per_s"] / max(baseline, 1)
    result = {
        "benchmark": "service_streams",
        "simulation": "synthetic scorer (workers/synthetic.py) paced at --rate windows/s per "
        "worker: no model is loaded or evaluated",
        "workers": args.workers,
        "rate_per_worker": args.rate,
        "stream_clients_nice": args.nice,
        "cpus": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "without_streams": [before, after],
        "with_streams": loud,
        "throughput_loss": round(loss, 4),
        "targets_met": {
            "healthz_p99<=100ms": (loud["healthz"]["p99_ms"] or 1e9) <= 100,
            "throughput_loss<=10%": loss <= 0.10,
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
