"""A hostile but authenticated user of a shared GPU service, and the limits that hold.

Each test is a finding of a probe against `golf serve` that once held (unbounded JSON
bodies, exploding parameters, cancel that kept the worker busy, endless retries,
trusted stored bytes, stalled bodies, un-paged reads, loose types): it failed before
the limit existed and passes with it.
"""

import hashlib
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import ray
from service_support import (
    ADMIN,
    KEYS,
    auth,
    make_artifact,
    make_settings,
    serve,
    serve_http,
    submit,
    upload,
    wait_job,
)

from service.auth import ApiKeys
from service.reports import build_report
from workers.integrity import IntegrityError

# Long enough to cancel mid-batch: ~1,900 windows of a 200-step SLOT.
LONG = {"seq_len": 256, "stride": 16, "batch_windows": 8, "slot_steps": 200}
LIMITS = {
    "json_deadline_s": 1.0,
    "upload_deadline_s": 2.0,
    "owner_budget": 2.5e6,  # two LONG jobs (about 1.05e6 each), not three
    "max_job_cost": 2e6,
    "max_batch_bytes": 2**30,
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def settings(root: Path, demo_data: Path):
    return make_settings(root, demo_data, **LIMITS)


@pytest.fixture(scope="module")
def artifact(root: Path, demo_data: Path) -> Path:
    return make_artifact(demo_data, root / "tiny.golf")


@pytest.fixture(scope="module")
def client(ray_cluster, settings):
    with serve(settings) as client:
        yield client


@pytest.fixture(scope="module")
def artifact_id(client, artifact: Path) -> str:
    for owner in KEYS:
        response = upload(client, artifact.read_bytes(), owner=owner)
        assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def url(ray_cluster, root: Path, demo_data: Path):
    """The same kind of app under uvicorn, for what needs real sockets and timings."""
    with serve_http(make_settings(root / "http", demo_data, **LIMITS)) as url:
        yield url


# ------------------------------------------------------------------ cheap rejection


# The hostile client and the /healthz probe run in their own process, so that what is
# timed is the server, not the GIL it would otherwise share with them.
PROBE = """
import json, sys, threading, time
import httpx

url = sys.argv[1]
seen, stop = [], threading.Event()

def probe():
    with httpx.Client(timeout=5) as http:
        while not stop.is_set():
            started = time.monotonic()
            http.get(url + "/healthz").raise_for_status()
            seen.append(time.monotonic() - started)
            time.sleep(0.01)

def post(headers):
    started = time.monotonic()
    body = b"{" + b" " * (20 * 2**20) + b"}"
    headers = headers | {"Content-Type": "application/json"}
    response = httpx.post(url + "/v1/jobs", content=body, headers=headers, timeout=30)
    return response.status_code, time.monotonic() - started

thread = threading.Thread(target=probe)
thread.start()
time.sleep(0.2)
no_key = post({})
with_key = post({"Authorization": "Bearer key-alice"})
time.sleep(0.2)
stop.set()
thread.join()
print(json.dumps({"no_key": no_key, "with_key": with_key, "healthz": seen}))
"""


def test_a_20_mb_body_is_refused_within_a_second_and_healthz_stays_fast(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    (status, seconds) = seen["no_key"]
    assert status == 401 and seconds < 1.0, seen["no_key"]
    (status, seconds) = seen["with_key"]
    assert status == 413 and seconds < 1.0, seen["with_key"]
    assert seen["healthz"] and max(seen["healthz"]) < 0.1, f"/healthz: {seen['healthz']}"


def _raw_request(url: str, head: bytes, body: bytes, wait: float) -> bytes:
    """Send a request whose body stops short, then read whatever the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait + 5) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        return answer


def test_a_stalled_json_body_gets_408(url: str) -> None:
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer key-alice\r\nContent-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_request(url, head, b'{"artifact": ', wait=LIMITS["json_deadline_s"])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < LIMITS["json_deadline_s"] + 2


def test_a_stalled_upload_gets_408_and_leaves_no_temp_file(url: str, root: Path) -> None:
    head = (
        b"POST /v1/artifacts HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        b"Authorization: Bearer key-alice\r\nContent-Length: 100000\r\n\r\n"
    )
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n' + b"x" * 100
    answer = _raw_request(url, head, body, wait=LIMITS["upload_deadline_s"])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    uploads = root / "http" / "state" / "uploads"
    assert not any(uploads.iterdir())


def test_an_unauthenticated_half_sent_body_is_answered_at_once(url: str) -> None:
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_request(url, head, b"{", wait=1)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - started < 1.0


def test_multipart_headers_and_other_fields_are_capped(client) -> None:
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"j" * 1000) for i in range(40))
    body = b"--b\r\n" + junk + b"\r\ndata\r\n--b--\r\n"
    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    response = client.post("/v1/artifacts", content=body, headers=auth("alice") | multipart)
    assert response.status_code == 422 and "malformed multipart body" in response.text
    field = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\n' + b"n" * (1 << 20 | 1)
    response = client.post(
        "/v1/artifacts", content=field + b"\r\n--b--\r\n", headers=auth("alice") | multipart
    )
    assert response.status_code == 413, response.text


# ------------------------------------------------------------------ parameters and cost


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"seq_len": True}, "seq_len: Input should be a valid integer"),
        ({"seq_len": "128"}, "seq_len: Input should be a valid integer"),
        ({"batch_invariant": "yes"}, "batch_invariant: Input should be a valid boolean"),
        ({"seq_len": 1, "stride": 1, "batch_windows": 1}, "seq_len 1 is below"),
        ({"seq_len": 2048, "stride": 8}, "stride 8 is below this service's minimum 16"),
        ({"slot_steps": 10_000}, "slot_steps 10000 exceeds this service's maximum"),
        ({"seq_len": 2048, "batch_windows": 4096}, "max_batch_bytes"),
        # batch_windows 8: a batch fits max_batch_bytes (SLOT holds [B, T, V] buffers), so
        # the job's size is what is refused.
        ({"seq_len": 1024, "stride": 16, "slot_steps": 200, "batch_windows": 8}, "max_job_cost"),
    ],
)
def test_hostile_parameters_are_refused_naming_the_limit(
    client, artifact_id: str, params: dict, fragment: str
) -> None:
    body = {"artifact": artifact_id, "dataset": "demo", "params": params}
    body["protocols"] = ["plain", "sliding", "slot", "slot-causal"]
    response = client.post("/v1/jobs", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_the_owner_budget_counts_queued_running_and_stopping_work(client, artifact_id: str) -> None:
    """dave may queue about two long jobs; a third is 429 naming the budget, until the
    cancelled ones have stopped."""
    jobs = [submit(client, artifact_id, ["slot"], owner="dave", params=LONG) for _ in range(2)]
    over = client.post(
        "/v1/jobs",
        json={"artifact": artifact_id, "dataset": "demo", "protocols": ["slot"], "params": LONG},
        headers=auth("dave"),
    )
    assert over.status_code == 429 and "owner_budget" in over.json()["detail"], over.text
    for job in jobs:
        assert client.delete(f"/v1/jobs/{job['id']}", headers=auth("dave")).status_code == 200
    _wait_stopped(client, [job["id"] for job in jobs], owner="dave")
    again = submit(client, artifact_id, ["slot"], owner="dave", params=LONG)
    client.delete(f"/v1/jobs/{again['id']}", headers=auth("dave"))
    _wait_stopped(client, [again["id"]], owner="dave")


def _wait_stopped(client, job_ids: list[str], owner: str, timeout: float = 5.0) -> float:
    """Seconds until no shard of the jobs is running or stopping."""
    started = time.monotonic()
    while True:
        jobs = [client.get(f"/v1/jobs/{j}", headers=auth(owner)).json() for j in job_ids]
        busy = [s for job in jobs for s in job["shards"] if s["state"] in ("running", "stopping")]
        if not busy:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"still busy: {busy}"
        time.sleep(0.05)


# ------------------------------------------------------------------ cancellation, retries


def test_cancel_frees_the_worker_within_seconds(client, artifact_id: str) -> None:
    job = submit(client, artifact_id, ["slot"], owner="bob", params=LONG)
    running = wait_job(client, job["id"], owner="bob", until=("running",))
    assert running["state"] == "running"
    time.sleep(0.5)  # well inside its first batches
    assert client.delete(f"/v1/jobs/{job['id']}", headers=auth("bob")).status_code == 200
    assert _wait_stopped(client, [job["id"]], owner="bob") < 5.0
    shards = client.get(f"/v1/jobs/{job['id']}", headers=auth("bob")).json()["shards"]
    assert {s["state"] for s in shards} == {"cancelled"}
    metrics = client.get("/metrics").text
    assert 'golf_shards{state="running"} 0.0' in metrics
    # The next owner's work starts within seconds (a fresh actor replaced the killed one).
    other = submit(client, artifact_id, ["sliding"], owner="carol")
    assert wait_job(client, other["id"], owner="carol", timeout=30)["state"] == "succeeded"


def test_a_shard_that_keeps_killing_workers_fails_its_job(client, artifact_id: str) -> None:
    job = submit(client, artifact_id, ["slot"], owner="alice", params=LONG | {"max_windows": 8})
    pool = client.app.state.golf.pool
    kills = 0
    deadline = time.monotonic() + 120
    while (state := client.get(f"/v1/jobs/{job['id']}", headers=auth("alice")).json())[
        "state"
    ] not in ("failed", "succeeded"):
        assert time.monotonic() < deadline, state
        running = [s["worker"] for s in state["shards"] if s["state"] == "running"]
        actors = {w.name: w.actor for w in pool.workers}
        if running and running[0] in actors and actors[running[0]] is not None:
            ray.kill(actors[running[0]])
            kills += 1
            time.sleep(0.5)
        time.sleep(0.02)
    assert state["state"] == "failed" and kills == 3, (state["error"], kills)
    assert "shard slot#0 (batches 0-1) lost its worker 3 times" in state["error"]


# ------------------------------------------------------------------ integrity


def test_a_swapped_stored_artifact_fails_its_job_and_a_reupload_repairs_it(
    client, settings, root: Path, demo_data: Path
) -> None:
    mine = make_artifact(demo_data, root / "mine.golf", seed=11)
    other = make_artifact(demo_data, root / "other.golf", seed=12)
    sha = upload(client, mine.read_bytes(), owner="carol").json()["id"]
    stored = settings.artifacts_dir / f"{sha}.golf"
    stored.write_bytes(other.read_bytes())  # another valid artifact under mine's name
    job = wait_job(client, submit(client, sha, ["sliding"], owner="carol")["id"], owner="carol")
    assert job["state"] == "failed" and "fails its checksum" in job["error"], job["error"]
    assert upload(client, mine.read_bytes(), owner="carol").status_code == 200
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha
    job = wait_job(client, submit(client, sha, ["sliding"], owner="carol")["id"], owner="carol")
    assert job["state"] == "succeeded", job["error"]


def test_edited_window_rows_withhold_the_report(client, settings, artifact_id: str) -> None:
    job = wait_job(client, submit(client, artifact_id, ["sliding"])["id"])
    assert job["state"] == "succeeded"
    store = client.app.state.golf.store
    assert build_report(store, job["id"], {})["reports"]  # intact rows: a report
    with sqlite3.connect(settings.db_path) as db:
        db.execute(
            "UPDATE windows SET nll_sum = nll_sum - 1 WHERE job = ? AND window < 8", (job["id"],)
        )
    with pytest.raises(IntegrityError, match="8 stored window records fail their checksum"):
        build_report(store, job["id"], {})


# ------------------------------------------------------------------ reads that scale


def test_windows_are_paged_and_streamed(client, artifact_id: str) -> None:
    job = wait_job(client, submit(client, artifact_id, ["sliding", "slot"])["id"])
    path = f"/v1/jobs/{job['id']}/windows"
    everything = client.get(path, params={"limit": 100_000}, headers=auth("alice")).json()
    assert everything["next_cursor"] is None and len(everything["windows"]) == 2 * 48
    pages, cursor = [], None
    while True:
        query = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = client.get(path, params=query, headers=auth("alice")).json()
        pages += page["windows"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == everything["windows"]
    streamed = client.get(path + ".ndjson", headers=auth("alice"))
    lines = [httpx.Response(200, content=line).json() for line in streamed.text.splitlines()]
    assert lines == everything["windows"]
    bad = client.get(path, params={"cursor": "nope:1"}, headers=auth("alice"))
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]
    shards = client.get(f"/v1/jobs/{job['id']}/shards", params={"limit": 2}, headers=auth("alice"))
    assert shards.json()["next_offset"] == 2 and len(shards.json()["shards"]) == 2


def test_job_lists_carry_counts_not_shards(client) -> None:
    jobs = client.get("/v1/jobs", headers=auth(ADMIN)).json()["jobs"]
    assert jobs and all("shards" not in job and "shard_counts" in job for job in jobs)


def test_a_keys_file_with_a_byte_order_mark_keeps_its_first_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_bytes("\ufeffsecret alice\n".encode())
    assert ApiKeys.load(path).lookup("secret").owner == "alice"
