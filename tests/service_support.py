"""Helpers of the service tests: a real app on the session's local Ray, driven over HTTP."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient

from golf.audit.causality import stream_audit
from golf.data.shards import Dataset
from golf.engine.runner import EvalInputs, run_protocol
from golf.formats.artifact import random_artifact
from golf.spec.config import preset
from golf.spec.params import EvalParams
from service.app import create_app
from service.settings import Settings

KEYS = {"alice": "key-alice", "bob": "key-bob", "carol": "key-carol", "dave": "key-dave"}
ADMIN = "key-admin"
TERMINAL = ("succeeded", "failed", "cancelled")

# Short jobs: 64-token windows with half overlap, a few dozen windows, 8-step SLOT.
PARAMS = {"seq_len": 64, "stride": 32, "batch_windows": 8, "max_windows": 48, "slot_steps": 8}


def auth(owner_or_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS.get(owner_or_key, owner_or_key)}"}


def make_artifact(data_dir: Path, out: Path, seed: int = 0) -> Path:
    dataset = Dataset.open(data_dir)
    config = preset("tiny").replace(vocab_size=dataset.vocab_size)
    random_artifact(config, dataset.tokenizer_sha256, dataset.vocab_size, out, seed=seed)
    return out


def make_settings(root: Path, demo_data: Path, **overrides: Any) -> Settings:
    """Settings for a test app: data root holding `demo`, owners of KEYS plus an admin."""
    data_root = root / "data"
    if not data_root.exists():
        data_root.mkdir(parents=True)
        (data_root / "demo").symlink_to(demo_data, target_is_directory=True)
        keys = "\n".join(f"{key} {owner}" for owner, key in KEYS.items())
        (root / "keys").write_text(f"# test keys\n{keys}\n{ADMIN} ops admin\n")
    fields: dict[str, Any] = {
        "data_root": data_root,
        "state_dir": root / "state",
        "api_keys": root / "keys",
        "workers": 2,
        "worker_cpus": 0.25,  # several apps' actors fit the session's 2-CPU Ray
        "worker_threads": 1,  # as the in-process reference (tests/conftest.py)
        "batches_per_shard": 2,
        "max_upload_bytes": 1 << 20,
        "max_decompressed_bytes": 4 << 20,
    }
    return Settings(**(fields | overrides))


@contextmanager
def serve(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@contextmanager
def serve_http(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free local port, in a thread; its URL."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "service did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    # Settled, as a load balancer would wait: every worker up (their start-up takes the
    # CPU for a while), so that timings measure the service, not its start.
    while httpx.get(url + "/healthz").json()["workers"] < (settings.workers or 1):
        assert thread.is_alive() and time.monotonic() < deadline, "workers did not start"
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def upload(client: TestClient, data: bytes, owner: str = "alice") -> Any:
    return client.post("/v1/artifacts", files={"file": ("model.golf", data)}, headers=auth(owner))


def submit(
    client: TestClient,
    artifact: str,
    protocols: list[str],
    owner: str = "alice",
    params: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "artifact": artifact,
        "dataset": "demo",
        "protocols": protocols,
        "params": PARAMS if params is None else params,
        **extra,
    }
    response = client.post("/v1/jobs", json=body, headers=auth(owner))
    assert response.status_code == 201, response.text
    return response.json()


def wait_job(
    client: TestClient,
    job_id: str,
    owner: str = "alice",
    timeout: float = 120,
    until: tuple[str, ...] = TERMINAL,
    poll: float = 0.05,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(owner)).json()
        if job["state"] in until:
            return job
        assert time.monotonic() < deadline, f"job stuck: {job}"
        time.sleep(poll)


def local_reports(
    artifact: Path, data_dir: Path, protocols: list[str], params: dict[str, Any]
) -> list[dict[str, Any]]:
    """What `golf eval --json` reports for the same inputs, in this process (the stream
    protocols' with the causality audit `golf eval` attaches)."""
    inputs = EvalInputs.load(str(artifact), str(data_dir))
    parsed = EvalParams.parse(params)
    reports = []
    for name in protocols:
        report = run_protocol(inputs, name, parsed)
        tokens = inputs.dataset.val_tokens(report.params.seq_len)
        audit = stream_audit(inputs.model, tokens, name, report.params)
        reports.append(report.model_copy(update={"audit": audit}).model_dump(mode="json"))
    return reports


def without_elapsed(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reports without their timings (compute and wall seconds), which no two runs share."""
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "wall_s")} for r in reports]
