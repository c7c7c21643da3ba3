"""The service against golf eval, bad input, auth, SSE and a killed worker, on local Ray.

One app (2 CPU workers) serves the module; each test submits real jobs over HTTP.
"""

import hashlib
import json
import os
import random
import tempfile
import time
from pathlib import Path

import pytest
import ray
from artifact_corpus import build_corpus
from service_support import (
    ADMIN,
    PARAMS,
    auth,
    local_reports,
    make_artifact,
    make_settings,
    serve,
    submit,
    upload,
    wait_job,
    without_elapsed,
)

PROTOCOLS = ["sliding", "slot", "slot-causal"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def artifact(root: Path, demo_data: Path) -> Path:
    return make_artifact(demo_data, root / "tiny.golf")


@pytest.fixture(scope="module")
def settings(root: Path, demo_data: Path):
    return make_settings(root, demo_data, max_jobs_per_owner=3)


@pytest.fixture(scope="module")
def client(ray_cluster, settings):
    with serve(settings) as client:
        yield client


@pytest.fixture(scope="module")
def artifact_id(client, artifact: Path) -> str:
    """Uploaded by alice, bob and carol (each may only use what they uploaded); not dave."""
    ids = set()
    for owner in ("alice", "bob", "carol"):
        response = upload(client, artifact.read_bytes(), owner=owner)
        assert response.status_code == 200, response.text
        ids.add(response.json()["id"])
    (only,) = ids  # the same bytes are one artifact
    return only


@pytest.fixture(scope="module")
def expected(artifact: Path, demo_data: Path) -> list[dict]:
    return local_reports(artifact, demo_data, PROTOCOLS, PARAMS)


def test_upload_is_content_addressed(client, artifact: Path, artifact_id: str) -> None:
    again = upload(client, artifact.read_bytes(), owner="bob")
    assert again.status_code == 200
    doc = again.json()
    assert doc["id"] == artifact_id == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert doc["bytes"] == doc["total_bytes"] == artifact.stat().st_size
    assert doc["verdict"] == "fits" and doc["flags"] == []
    assert doc["config"]["vocab_size"] == doc["vocab_size"] == 1024
    datasets = client.get("/v1/datasets", headers=auth("alice")).json()["datasets"]
    assert [d["name"] for d in datasets] == ["demo"]
    assert datasets[0]["tokenizer_sha256"] == doc["tokenizer_sha256"]
    looked_up = client.get(f"/v1/artifacts/{artifact_id}", headers=auth("bob"))
    assert looked_up.status_code == 200 and looked_up.json() == doc
    # dave never uploaded it: for him it does not exist, to read or to use.
    hidden = client.get(f"/v1/artifacts/{artifact_id}", headers=auth("dave"))
    assert hidden.status_code == 404
    assert client.get(f"/v1/artifacts/{artifact_id}", headers=auth(ADMIN)).status_code == 200
    unknown = client.get(f"/v1/artifacts/{'0' * 64}", headers=auth("carol"))
    assert unknown.status_code == 404 and unknown.json()["detail"] == f"unknown artifact {'0' * 64}"


def test_report_equals_golf_eval(client, artifact_id: str, expected: list[dict]) -> None:
    job = submit(client, artifact_id, PROTOCOLS)
    assert job["state"] == "queued" and len(job["shards"]) == 9  # 6 batches → 3 shards each
    done = wait_job(client, job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["progress"]["windows_done"] == done["progress"]["windows_total"] == 3 * 48
    report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    assert without_elapsed(report["reports"]) == without_elapsed(expected)
    assert [row["protocol"] for row in report["table"]] == PROTOCOLS
    assert report["table"][0]["delta_bpb"] == 0.0
    assert report["flags"] == [{"code": "non_causal_protocol", "protocol": "slot"}]
    assert report["environment"]["device"] == "cpu" and report["environment"]["workers"] == 2
    assert len(report["digest"]) == 64
    for protocol, want in zip(PROTOCOLS, expected, strict=True):
        assert done["running"][protocol]["tokens"] == want["tokens"]
        rows = client.get(
            f"/v1/jobs/{job['id']}/windows", params={"protocol": protocol}, headers=auth("alice")
        ).json()["windows"]
        assert [r["window"] for r in rows] == list(range(48))
        assert sum(r["tokens"] for r in rows) == want["tokens"]


def test_plain_beside_an_overlapping_stride_is_the_same_in_cli_and_service(
    client, artifact: Path, artifact_id: str, demo_data: Path
) -> None:
    """One stride rule everywhere: plain runs whole chunks, and both reports say stride = L."""
    from typer.testing import CliRunner

    from golf.cli import app

    params = {"seq_len": 128, "stride": 64, "batch_windows": 8, "max_windows": 16}
    args = ["eval", str(artifact), "--data", str(demo_data), "--protocol", "plain"]
    args += ["--protocol", "sliding", "--seq-len", "128", "--stride", "64"]
    args += ["--batch-windows", "8", "--max-windows", "16", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)["reports"]
    job = wait_job(client, submit(client, artifact_id, ["plain", "sliding"], params=params)["id"])
    assert job["state"] == "succeeded", job["error"]
    served = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()["reports"]
    assert without_elapsed(served) == without_elapsed(cli)
    assert [r["params"]["stride"] for r in served] == [128, 64]


def test_events_stream_progress_then_report(client, artifact_id: str, expected: list[dict]) -> None:
    job = submit(client, artifact_id, ["slot"])
    events = []
    with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth("alice")) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "report" and set(kinds[:-1]) == {"progress"} and len(kinds) >= 2
    assert events[-2][1]["state"] == "succeeded"
    final = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    assert events[-1][1] == final
    assert without_elapsed(final["reports"]) == without_elapsed(expected[1:2])


def test_auth_rules(client, artifact_id: str) -> None:
    assert client.get("/v1/jobs").status_code == 401
    wrong = client.get("/v1/jobs", headers=auth("not-a-key"))
    assert wrong.status_code == 401 and wrong.json() == {"detail": "unknown API key"}
    assert upload(client, b"x", owner="nobody").status_code == 401
    job = submit(client, artifact_id, ["sliding"], owner="bob")
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth("carol")).status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth("carol")).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth(ADMIN)).json()["owner"] == "bob"
    mine = client.get("/v1/jobs", headers=auth("bob")).json()["jobs"]
    assert {j["owner"] for j in mine} == {"bob"} and job["id"] in [j["id"] for j in mine]
    everyone = client.get("/v1/jobs", headers=auth(ADMIN)).json()["jobs"]
    assert {"alice", "bob"} <= {j["owner"] for j in everyone}
    assert [j["created_at"] for j in everyone] == sorted(
        (j["created_at"] for j in everyone), reverse=True
    )
    assert wait_job(client, job["id"], owner="bob")["state"] == "succeeded"


def test_cap_429_and_cancel(client, artifact_id: str) -> None:
    long = dict(PARAMS, max_windows=None, slot_steps=24)
    jobs = [submit(client, artifact_id, ["slot"], owner="carol", params=long) for _ in range(3)]
    over = client.post(
        "/v1/jobs",
        json={"artifact": artifact_id, "dataset": "demo", "protocols": ["sliding"]},
        headers=auth("carol"),
    )
    assert over.status_code == 429 and "cap 3" in over.json()["detail"]
    for job in jobs:
        cancelled = client.delete(f"/v1/jobs/{job['id']}", headers=auth("carol"))
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        # A running shard is `stopping` until its worker has let go of it, then cancelled.
        assert {s["state"] for s in cancelled.json()["shards"]} <= {"done", "stopping", "cancelled"}
    for job in jobs:
        deadline = time.monotonic() + 5
        while "stopping" in {
            s["state"]
            for s in client.get(f"/v1/jobs/{job['id']}", headers=auth("carol")).json()["shards"]
        }:
            assert time.monotonic() < deadline, "a cancelled shard kept its worker"
            time.sleep(0.05)
    again = client.delete(f"/v1/jobs/{jobs[0]['id']}", headers=auth("carol"))
    assert again.status_code == 409
    assert client.get(f"/v1/jobs/{jobs[0]['id']}/report", headers=auth("carol")).status_code == 409
    job = submit(client, artifact_id, ["sliding"], owner="carol")  # under the cap again
    assert wait_job(client, job["id"], owner="carol")["state"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"artifact": "0" * 64, "dataset": "demo", "protocols": ["slot"]}, 404, "unknown artifact"),
        ({"dataset": "nope", "protocols": ["slot"]}, 404, "unknown dataset"),
        ({"dataset": "../demo", "protocols": ["slot"]}, 404, "unknown dataset"),
        ({"dataset": "demo", "protocols": ["slot"], "params": {"seq_len": 0}}, 422, "seq_len"),
        ({"dataset": "demo", "protocols": ["slot"], "params": {"bogus": 1}}, 422, "bogus"),
        ({"dataset": "demo", "protocols": ["slat"]}, 422, "unknown protocol"),
        ({"dataset": "demo", "protocols": []}, 422, "protocols"),
        ({"dataset": "demo", "protocols": ["slot", "slot"]}, 422, "once"),
        (
            {"dataset": "demo", "protocols": ["slot"], "params": {"seq_len": 64, "stride": 99}},
            422,
            "stride",
        ),
        ({"dataset": "demo", "protocols": ["slot"], "params": {"seq_len": 60000}}, 422, "too few"),
        ({"dataset": "demo", "protocols": ["slot"], "priority": "high"}, 422, "priority"),
    ],
)
def test_bad_job_requests(client, artifact_id: str, body: dict, status: int, fragment: str) -> None:
    response = client.post("/v1/jobs", json={"artifact": artifact_id} | body, headers=auth("bob"))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and fragment in detail


def test_tokenizer_mismatch_409(client, root: Path, demo_data: Path) -> None:
    from golf.artifact import random_artifact
    from golf.config import preset

    other = root / "other-tokenizer.golf"
    random_artifact(preset("tiny").replace(vocab_size=1024), "ab" * 32, 1024, other)
    artifact_id = upload(client, other.read_bytes(), owner="dave").json()["id"]
    response = client.post(
        "/v1/jobs",
        json={"artifact": artifact_id, "dataset": "demo", "protocols": ["sliding"]},
        headers=auth("dave"),
    )
    assert response.status_code == 409 and "tokenizer" in response.json()["detail"]


def test_malformed_uploads_are_4xx_and_harmless(
    client, artifact: Path, artifact_id: str, settings, expected: list[dict]
) -> None:
    valid = artifact.read_bytes()
    assert upload(client, valid, owner="dave").json()["id"] == artifact_id
    job = submit(client, artifact_id, ["sliding"], owner="dave")  # must survive the barrage
    marker = Path(tempfile.gettempdir()) / f"golf-service-marker-{os.getpid()}"
    cases = [case.data for case in build_corpus(valid, marker, settings.max_decompressed_bytes)]
    rng = random.Random(0)
    while len(cases) < 220:
        data = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            at = rng.randrange(len(data))
            op = rng.choice(("flip", "cut", "insert"))
            if op == "flip":
                data[at] ^= 1 << rng.randrange(8)
            elif op == "cut":
                del data[at : at + rng.randint(1, 64)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 16))
        cases.append(bytes(data))
    for data in cases:
        response = upload(client, data, owner="dave")
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail
    assert not marker.exists()
    for headers, content in [
        ({"Content-Type": "application/octet-stream"}, valid),
        ({"Content-Type": "multipart/form-data; boundary=xyz"}, b"--xyz\r\ngarbage"),
    ]:
        response = client.post("/v1/artifacts", content=content, headers=auth("dave") | headers)
        # 413: a body that is not multipart is held to the JSON cap before anything else.
        assert response.status_code in (413, 415, 422) and "\n" not in response.json()["detail"]
    missing = client.post("/v1/artifacts", files={"other": ("a", valid)}, headers=auth("dave"))
    assert missing.status_code == 422 and "`file`" in missing.json()["detail"]
    assert client.get("/healthz").json() == {"ok": True, "workers": 2, "ray": True, "db": True}
    assert list(settings.uploads_dir.iterdir()) == []
    assert wait_job(client, job["id"], owner="dave")["state"] == "succeeded"
    report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("dave")).json()
    assert without_elapsed(report["reports"]) == without_elapsed(expected[:1])


def test_oversize_upload_413_leaves_nothing(client, settings) -> None:
    cap = settings.max_upload_bytes
    big = upload(client, bytes(cap + 1), owner="dave")
    assert big.status_code == 413 and str(cap) in big.json()["detail"]

    def chunks():  # no Content-Length: the cap must hold while streaming
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
        for _ in range(cap // 65536 + 2):
            yield bytes(65536)
        yield b"\r\n--b--\r\n"

    streamed = client.post(
        "/v1/artifacts",
        content=chunks(),
        headers=auth("dave") | {"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413
    assert list(settings.uploads_dir.iterdir()) == []
    assert client.get("/healthz").json()["ok"] is True


def test_killed_worker_shard_is_rerun_once(
    client, artifact: Path, artifact_id: str, demo_data: Path
) -> None:
    params = dict(PARAMS, slot_steps=24)
    job = submit(client, artifact_id, ["slot"], params=params)
    running = wait_job(client, job["id"], until=("running", "succeeded"), poll=0.005)
    assert running["state"] == "running", "the job finished before the kill"
    victim = next(s["worker"] for s in running["shards"] if s["state"] == "running")
    pool = client.app.state.golf.pool
    ray.kill(next(w.actor for w in pool.workers if w.name == victim))
    done = wait_job(client, job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert max(s["attempts"] for s in done["shards"]) == 2
    report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    local = local_reports(artifact, demo_data, ["slot"], params)
    assert without_elapsed(report["reports"]) == without_elapsed(local)
    assert report["reports"][0]["tokens"] == 64 + 47 * 32  # every target once
    windows = client.get(f"/v1/jobs/{job['id']}/windows", headers=auth("alice")).json()["windows"]
    assert [w["window"] for w in windows] == list(range(48))
    deadline = time.monotonic() + 60
    while client.get("/healthz").json()["workers"] < 2:  # the replacement actor is starting
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.1)


def test_metrics_count_jobs_shards_and_windows(client, artifact_id: str) -> None:
    job = submit(client, artifact_id, ["sliding"], owner="alice")
    done = wait_job(client, job["id"])
    assert done["state"] == "succeeded"
    text = client.get("/metrics").text
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("golf_")
    }
    assert values['golf_jobs{state="succeeded"}'] >= 1
    assert values['golf_shards{state="done"}'] >= len(done["shards"])
    assert values["golf_windows_total"] >= done["progress"]["windows_done"] > 0
    assert sum(v for k, v in values.items() if k.startswith("golf_worker_busy_seconds_total")) > 0
