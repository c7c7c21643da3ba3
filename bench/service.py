"""Service overhead and worker scaling, printed as JSON.

Times one job three ways on the same artifact, data and params, best of --rounds each:
`golf eval` in this process (model load + every protocol), and the service with 1 CPU
worker and with 2, from POST /v1/jobs to `succeeded` (workers started, artifact
uploaded). Reports service ÷ local and the 1 → 2 worker speed-up, and how far the
service's val_bpb is from the local one (bitwise only at equal torch thread counts).

    .venv/bin/python bench/service.py [--data build/demo/data] [--out docs/perf/service_cpu.json]
"""

# ruff: noqa: E402  (the path fix below must precede the imports)
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a file, this script's folder comes first on sys.path and its name shadows the
# `service` package; put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import ray
import torch
from fastapi.testclient import TestClient
from rich.console import Console

from golf.data.demo import build_demo
from golf.data.shards import Dataset
from golf.engine.runner import EvalInputs, run_protocol
from golf.formats.artifact import random_artifact
from golf.spec.config import preset
from golf.spec.params import EvalParams
from service.app import create_app
from service.settings import Settings

KEY = "bench-key"


def local_eval(
    artifact: Path, data: Path, protocols: list[str], params: dict, rounds: int
) -> tuple[float, dict]:
    """Best of `rounds` `golf eval` runs, model loading included."""
    torch.set_num_threads(os.cpu_count() or 1)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        inputs = EvalInputs.load(str(artifact), str(data))
        parsed = EvalParams.parse(params)
        bpb = {p: run_protocol(inputs, p, parsed).val_bpb for p in protocols}
        times.append(time.perf_counter() - started)
    return min(times), bpb


def service_eval(
    root: Path, artifact: Path, protocols: list[str], params: dict, workers: int, rounds: int
) -> tuple[float, dict]:
    """Best of `rounds` jobs, submission to success, on one warm app with `workers` actors."""
    settings = Settings(
        data_root=root / "data",
        state_dir=root / f"state-{workers}",
        api_keys=root / "keys",
        workers=workers,
        worker_cpus=1,
    )
    headers = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app(settings)) as client:
        while client.get("/healthz").json()["workers"] < workers:
            time.sleep(0.1)
        files = {"file": ("a.golf", artifact.read_bytes())}
        artifact_id = client.post("/v1/artifacts", files=files, headers=headers).json()["id"]
        body = {"artifact": artifact_id, "dataset": "bench", "protocols": protocols}
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            job = client.post("/v1/jobs", json=body | {"params": params}, headers=headers).json()
            # Follow the job as `golf submit --wait` does, by its event stream: polling
            # would spend the cores the workers need on building job objects.
            url = f"/v1/jobs/{job['id']}/events"
            with client.stream("GET", url, headers=headers) as events:
                for line in events.iter_lines():
                    if line in ("event: report", "event: end"):
                        break
            times.append(time.perf_counter() - started)
            job = client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
            assert job["state"] == "succeeded", job["error"]
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=headers).json()
    return min(times), {r["protocol"]: r["val_bpb"] for r in report["reports"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="dataset folder (default: build a demo one)")
    parser.add_argument("--protocols", default="sliding,slot")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--stride", type=int, default=64)
    parser.add_argument("--max-windows", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2, help="best of this many runs each")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    protocols = args.protocols.split(",")
    params = {"seq_len": args.seq_len, "stride": args.stride, "max_windows": args.max_windows}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        data = args.data or root / "demo"
        if args.data is None:
            build_demo(data, console=Console(quiet=True), max_chars=2_000_000)
        (root / "data" / "bench").symlink_to(data.resolve(), target_is_directory=True)
        (root / "keys").write_text(f"{KEY} bench admin\n")
        dataset = Dataset.open(data)
        artifact = root / "tiny.golf"
        config = preset("tiny").replace(vocab_size=dataset.vocab_size)
        random_artifact(config, dataset.tokenizer_sha256, dataset.vocab_size, artifact)

        local_s, local_bpb = local_eval(artifact, data, protocols, params, args.rounds)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            runs = {
                n: service_eval(root, artifact, protocols, params, n, args.rounds) for n in (1, 2)
            }
        finally:
            ray.shutdown()
    result = {
        "benchmark": "service",
        "protocols": protocols,
        "params": params,
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "torch": torch.__version__,
        "local_s": round(local_s, 3),
        "service_s": {str(n): round(s, 3) for n, (s, _) in runs.items()},
        "service_over_local": round(runs[1][0] / local_s, 3),
        "speedup_1_to_2_workers": round(runs[1][0] / runs[2][0], 3),
        "val_bpb": local_bpb,
        # Bitwise agreement needs equal torch thread counts; report the largest gap.
        "max_abs_bpb_diff": max(
            abs(bpb[p] - local_bpb[p]) for _, bpb in runs.values() for p in protocols
        ),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
