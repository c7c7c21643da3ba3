"""The service against golf eval, bad input, auth, SSE and a killed worker, on local Ray.

One app (2 CPU workers) serves the module; each test submits real jobs over HTTP.
"""

import hashlib
import json
import lzma
import math
import os
import random
import socket
import subprocess
import sys
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
    assert [row["delta_bpb"] for row in report["table"]] == [None] * 3  # partial: no Δ
    assert done["partial"] is True  # the job object says so too (the dashboard marks it)
    assert all(r["partial"] and r["windows"] == 48 < r["windows_total"] for r in report["reports"])
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
        ({"dataset": "demo", "protocols": ["slot"], "group": "a b"}, 422, "group"),
        ({"dataset": "demo", "protocols": ["slot"], "group": "g" * 65}, 422, "group"),
    ],
)
def test_bad_job_requests(client, artifact_id: str, body: dict, status: int, fragment: str) -> None:
    response = client.post("/v1/jobs", json={"artifact": artifact_id} | body, headers=auth("bob"))
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and fragment in detail


def test_tokenizer_mismatch_409(client, root: Path, demo_data: Path) -> None:
    from golf.formats.artifact import random_artifact
    from golf.spec.config import preset

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
    health = client.get("/healthz").json()
    assert health | {"db_checked_at": None} == {
        "ok": True,
        "workers": 2,
        "ray": True,
        "db": True,
        "db_error": None,
        "db_checked_at": None,
    }
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


def test_series_is_kept_by_the_service_and_jobs_carry_the_file_name(
    client, artifact_id: str, artifact: Path
) -> None:
    """The running val_bpb of each batch landed, served whole at any time; the uploaded
    file's name is listed with the owner's jobs."""
    named = client.post(
        "/v1/artifacts", files={"file": ("runs/seed-1.golf", artifact.read_bytes())},
        headers=auth("alice"),
    )  # fmt: skip
    assert named.status_code == 200
    job = submit(client, artifact_id, PROTOCOLS)
    assert job["filename"] == "seed-1.golf"  # the base name only
    done = wait_job(client, job["id"])
    assert done["state"] == "succeeded"
    doc = client.get(f"/v1/jobs/{job['id']}/series", headers=auth("alice")).json()
    assert doc["job"] == job["id"] and list(doc["series"]) == PROTOCOLS
    for protocol, points in doc["series"].items():
        xs = [x for x, _ in points]
        assert xs == sorted(set(xs)) and xs[-1] == PARAMS["max_windows"]
        assert doc["windows_total"][protocol] == PARAMS["max_windows"]
        assert len(points) == PARAMS["max_windows"] // PARAMS["batch_windows"]  # one a batch
        assert math.isclose(points[-1][1], done["running"][protocol]["val_bpb"], rel_tol=1e-12)
    listed = client.get("/v1/jobs", headers=auth("alice")).json()["jobs"]
    assert [j["filename"] for j in listed if j["id"] == job["id"]] == ["seed-1.golf"]
    other = client.get(f"/v1/jobs/{job['id']}/series", headers=auth("dave"))
    assert other.status_code == 404


def test_series_is_thinned_to_200_points(tmp_path: Path) -> None:
    from golf.data.bytes import bits_per_byte
    from service.store import MAX_SERIES_POINTS, Store

    store = Store(tmp_path / "db.sqlite")
    store._db.execute(
        "INSERT INTO totals (job, protocol, windows_total) VALUES ('j', 'sliding', 1000)"
    )
    for i in range(1, 1001):
        store._db.execute(
            "UPDATE totals SET windows_done = ?, nll_sum = ?, bytes = ?", (i, i * 2.0, i * 3)
        )
        store.add_series_point("j", "sliding")
        (points,) = store.series("j").values()
        assert points[-1] == (i, bits_per_byte(i * 2.0, i * 3))  # the latest is always there
        assert len(points) <= MAX_SERIES_POINTS + 2
    xs = [x for x, _ in points]
    assert xs[0] == 1 and xs[-1] == 1000
    gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    step = 1000 // MAX_SERIES_POINTS
    assert set(gaps[:-1]) == {step} and gaps[-1] <= step  # evenly thinned, the latest kept


def test_an_upload_that_is_no_artifact_is_named_in_the_error(client) -> None:
    text = client.post(
        "/v1/artifacts", files={"file": ("notes.txt", b"hello")}, headers=auth("alice")
    )
    assert text.status_code == 422
    assert text.json()["detail"].startswith("notes.txt: not a .golf artifact (not an xz stream")
    torch_file = lzma.compress(b"PK\x03\x04" + bytes(64), format=lzma.FORMAT_XZ)
    ptz = client.post(
        "/v1/artifacts", files={"file": ("final.ptz", torch_file)}, headers=auth("alice")
    )
    assert ptz.status_code == 422 and "golf import-pg" in ptz.json()["detail"]
    assert ptz.json()["detail"].startswith("final.ptz: payload is a zip archive")


def test_serve_refuses_a_busy_port_before_starting_ray(tmp_path: Path) -> None:
    golf = Path(sys.executable).parent / "golf"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [str(golf), "serve", "--port", str(port), "--state-dir", str(tmp_path / "s"),
             "--data-root", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is in use; pick another with --port"
    )
    assert "ray" not in result.stderr.lower() and "\x1b" not in result.stderr
    assert time.monotonic() - started < 30


def test_serve_names_its_datasets_or_warns_of_none(
    tmp_path: Path, settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import announce_datasets

    announce_datasets(tmp_path / "nonexistent")
    assert capsys.readouterr().err == (
        f"warning: data root {tmp_path / 'nonexistent'} does not exist; no datasets are served\n"
    )
    announce_datasets(tmp_path)
    assert capsys.readouterr().err.startswith(f"warning: data root {tmp_path} holds no datasets")
    announce_datasets(settings.data_root)
    line = capsys.readouterr().err
    assert line.startswith("serving 1 dataset(s) from ") and "demo (" in line
    assert "val tokens)" in line and line.count("\n") == 1


def test_groups_and_the_leaderboard(client, artifact_id: str, root: Path, demo_data: Path) -> None:
    """Jobs tagged with a group rank as one entry (its seeds' mean); an untagged job ranks
    by its artifact; partial runs stay off unless asked for; an owner sees only its own
    jobs, an admin everyone's, and everyone the jobs published to the shared board."""
    other = make_artifact(demo_data, root / "other.golf", seed=11)
    response = upload(client, other.read_bytes(), owner="dave")
    assert response.status_code == 200, response.text
    other_id = response.json()["id"]
    small = dict(PARAMS, max_windows=16)
    jobs = [
        submit(client, artifact_id, ["sliding"], owner="alice", params=small, group="recipe-1.a"),
        submit(client, artifact_id, ["sliding", "slot"], owner="alice", params=small,
               group="recipe-1.a", code_bytes=48_000, code_sha256="c" * 64),
        submit(client, other_id, ["sliding"], owner="dave", params=small),
    ]  # fmt: skip
    assert [j["group"] for j in jobs] == ["recipe-1.a", "recipe-1.a", None]
    for job in jobs:
        assert wait_job(client, job["id"], owner=job["owner"])["state"] == "succeeded"
    listed = client.get("/v1/jobs", headers=auth("alice")).json()["jobs"]
    assert {j["id"]: j["group"] for j in listed}[jobs[0]["id"]] == "recipe-1.a"

    board = client.get("/v1/leaderboard?dataset=demo", headers=auth("dave")).json()
    assert board == {"dataset": "demo", "board": "mine", "rows": []}  # all partial
    url = "/v1/leaderboard?dataset=demo&include_partial=true"
    board = client.get(url, headers=auth("dave")).json()
    assert {r["job"] for r in board["rows"]} <= set(dave_jobs(client))  # only dave's own
    (row,) = [r for r in board["rows"] if r["artifact"] == other_id]
    report = client.get(f"/v1/jobs/{jobs[2]['id']}/report", headers=auth("dave")).json()
    r = report["reports"][0]
    assert row | {"finished_at": None, "eval_s": None} == {
        "protocol": "sliding",
        "val_bpb": r["val_bpb"],
        "val_bpb_std": None,
        "val_loss": r["val_loss"],
        "seeds": 1,
        "val_bpbs": [r["val_bpb"]],
        "owner": "dave",
        "artifact": other_id,
        "group": None,
        "job": jobs[2]["id"],
        "jobs": [jobs[2]["id"]],
        "params": {"seq_len": 64, "stride": 32, "precision": "auto"},
        "eval_s": None,
        "projected_8xh100_s": None,
        "device": r["engine"]["device_name"],
        "total_bytes": report["artifact"]["total_bytes"],
        "code_bytes": 0,
        "verdict": "fits",
        "flags": [],
        "partial": True,
        "finished_at": None,
    }
    assert 0 < row["eval_s"] == r["wall_s"]

    everyone = client.get(url, headers=auth(ADMIN)).json()["rows"]
    assert [r["protocol"] for r in everyone] == sorted(r["protocol"] for r in everyone)
    for protocol in {r["protocol"] for r in everyone}:
        values = [r["val_bpb"] for r in everyone if r["protocol"] == protocol]
        assert values == sorted(values)
    grouped = [r for r in everyone if r["group"] == "recipe-1.a"]
    assert {r["protocol"] for r in grouped} == {"sliding", "slot"}
    (sliding,) = [r for r in grouped if r["protocol"] == "sliding"]
    assert sliding["seeds"] == 1 and sliding["job"] == jobs[1]["id"]  # one artifact: one seed
    (slot,) = [r for r in grouped if r["protocol"] == "slot"]
    assert slot["job"] == jobs[1]["id"] and slot["code_bytes"] == 48_000
    # The code bytes the job was submitted with count in its report's size verdict.
    art = client.get(f"/v1/jobs/{jobs[1]['id']}/report", headers=auth("alice")).json()["artifact"]
    assert art["code_bytes"] == 48_000 and art["code_declared"] is True
    assert art["total_bytes"] == art["artifact_bytes"] + 48_000
    assert report["artifact"]["code_declared"] is False  # dave's job declared none
    assert slot["flags"] == [{"code": "non_causal_protocol", "protocol": "slot"}]
    only = client.get(url + "&protocol=slot", headers=auth(ADMIN))
    assert {r["protocol"] for r in only.json()["rows"]} == {"slot"}
    nothing = client.get("/v1/leaderboard?dataset=nope", headers=auth(ADMIN))
    assert nothing.status_code == 404 and "unknown dataset 'nope'" in nothing.json()["detail"]

    # The shared board: only published jobs, of every owner, to every owner.
    shared = url + "&board=shared"
    assert client.get(shared, headers=auth("alice")).json()["rows"] == []
    publish = f"/v1/jobs/{jobs[2]['id']}/publish"
    assert client.post(publish, json={}, headers=auth("alice")).status_code == 404  # dave's
    done = client.post(publish, json={}, headers=auth("dave"))
    assert done.status_code == 200 and done.json() == {"job": jobs[2]["id"], "published": True}
    seen = client.get(shared, headers=auth("alice")).json()["rows"]
    assert [(r["job"], r["owner"]) for r in seen] == [(jobs[2]["id"], "dave")]
    client.post(publish, json={"published": False}, headers=auth("dave"))
    assert client.get(shared, headers=auth("alice")).json()["rows"] == []


def test_an_old_database_gains_the_group_column(tmp_path: Path) -> None:
    import sqlite3

    from service.store import Store

    db = sqlite3.connect(tmp_path / "old.db")
    db.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL,"
        " artifact TEXT NOT NULL, dataset TEXT NOT NULL, dataset_sha256 TEXT NOT NULL,"
        " protocols TEXT NOT NULL, params TEXT NOT NULL, plans TEXT NOT NULL,"
        " priority INTEGER NOT NULL, created_at REAL NOT NULL, started_at REAL,"
        " finished_at REAL, error TEXT, report TEXT)"
    )
    db.execute(
        "INSERT INTO jobs VALUES ('j_old', 'alice', 'failed', 'a', 'demo', 'd', '[]', '{}',"
        " '{}', 0, 1.0, NULL, 2.0, 'x', NULL)"
    )
    db.commit()
    db.close()
    store = Store(tmp_path / "old.db")
    try:
        job = store.job("j_old")
        assert job is not None and job.group is None and job.owner == "alice"
    finally:
        store.close()


def dave_jobs(client) -> list[str]:
    return [job["id"] for job in client.get("/v1/jobs", headers=auth("dave")).json()["jobs"]]


def test_serve_prints_where_the_dashboard_is() -> None:
    from service.cli import dashboard_url

    assert dashboard_url("127.0.0.1", 8000) == "http://127.0.0.1:8000/"
    assert dashboard_url("0.0.0.0", 9000) == "http://127.0.0.1:9000/"
    assert dashboard_url("::", 80) == "http://[::1]:80/"
    assert dashboard_url("::1", 80) == "http://[::1]:80/"
