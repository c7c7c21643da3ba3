"""Owners cannot hurt each other, the event loop does not stall, results cannot be forged
or silently lost: the findings of the second hostile probe (issue 14), each reproduced
as the attack it was and held.
"""

import asyncio
import socket
import sqlite3
import stat
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
    submit,
    upload,
    wait_job,
)

from golf.spec.jobplan import plan_job
from golf.spec.params import EvalParams
from service.reports import build_report
from service.results import Results
from workers.integrity import IntegrityError

LONG = {"seq_len": 256, "stride": 16, "batch_windows": 8, "slot_steps": 200}
LIMITS = {
    "owner_budget": 2.5e6,  # two LONG jobs (about 1.05e6 each), not three
    "max_job_cost": 2e6,
    "max_batch_bytes": 2**30,
    "max_streams": 6,
    "max_streams_per_owner": 3,
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


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


def _shards(client, job_id: str, owner: str) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}", headers=auth(owner)).json()["shards"]


def _wait_quiet(client, job_ids: list[str], owner: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        busy = [
            s
            for j in job_ids
            for s in _shards(client, j, owner)
            if s["state"] in ("running", "stopping")
        ]
        if not busy:
            return
        assert time.monotonic() < deadline, f"still busy: {busy}"
        time.sleep(0.05)


def _live_actors(pool) -> dict[str, int]:
    """Worker name -> pid of its actor, asked of the actor itself (a dead one raises)."""
    return {w.name: ray.get(w.actor.info.remote(), timeout=30)["pid"] for w in pool.workers}


# ------------------------------------------------------------------ N1, N2: owners and workers


def test_cancels_by_one_owner_cost_another_nothing(client, artifact_id: str) -> None:
    """N1: alice cancels a long SLOT job twice; bob's job, sent to the same two slots,
    never meets a dead actor: it succeeds and no shard of it used more than one attempt."""
    pool = client.app.state.golf.pool
    for _ in range(2):
        job = submit(client, artifact_id, ["slot"], owner="alice", params=LONG)
        wait_job(client, job["id"], owner="alice", until=("running",))
        time.sleep(0.3)
        assert client.delete(f"/v1/jobs/{job['id']}", headers=auth("alice")).status_code == 200
        # While a killed slot is replaced it is not idle: no idle slot holds a dead actor.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            idle = [w for w in pool.workers if not w.busy]
            assert all(not w.doomed for w in idle)
            if len(idle) == len(pool.workers):
                break
            time.sleep(0.02)
        _live_actors(pool)
    bob = wait_job(client, submit(client, artifact_id, ["sliding"], owner="bob")["id"], "bob")
    assert bob["state"] == "succeeded", bob["error"]
    assert {s["attempts"] for s in bob["shards"]} == {1}, bob["shards"]


def test_a_task_error_fails_its_job_frees_the_budget_and_keeps_the_worker(
    client, artifact_id: str, demo_data: Path
) -> None:
    """N1/N2: settings a worker cannot run (here slipped past submission, written to the
    store directly) fail the job on the worker; the worker that raised is not killed, no
    shard is left `stopping`, and the owner's budget is free at once."""
    s = client.app.state.golf
    before = _live_actors(s.pool)
    params = EvalParams.parse(LONG | {"attention": "flash", "max_windows": 64})
    plan = plan_job(s.datasets.get("demo").val_tokens(256).size, ["slot"], params, 2)
    jobs = [
        s.store.create_job(
            owner="carol",
            artifact=artifact_id,
            dataset="demo",
            dataset_sha256=s.datasets.get("demo").sha256,
            params=params,
            plan=plan,
            priority=0,
            max_active=8,
            budget=s.settings.owner_budget,
        )
        for _ in range(2)
    ]
    s.scheduler.wake()
    for job_id in jobs:
        job = wait_job(client, job_id, owner="carol")
        assert job["state"] == "failed" and "attention 'flash'" in job["error"], job["error"]
        assert "ip=" not in job["error"] and "pid=" not in job["error"]
    _wait_quiet(client, jobs, "carol", timeout=5)
    assert {s_["state"] for j in jobs for s_ in _shards(client, j, "carol")} <= {"failed"}
    assert _live_actors(s.pool) == before  # the same actors: none was killed
    again = [submit(client, artifact_id, ["slot"], owner="carol", params=LONG) for _ in range(2)]
    for job in again:
        client.delete(f"/v1/jobs/{job['id']}", headers=auth("carol"))
    _wait_quiet(client, [j["id"] for j in again], "carol")


def test_failed_jobs_release_the_owner_budget(client, settings, root: Path, demo_data: Path):
    """N2: jobs that fail at once (a stored artifact swapped under them) leave no shard
    in `stopping`, so the owner may submit again straight away instead of getting 429."""
    mine = make_artifact(demo_data, root / "mine.golf", seed=21)
    other = make_artifact(demo_data, root / "other.golf", seed=22)
    sha = upload(client, mine.read_bytes(), owner="dave").json()["id"]
    (settings.artifacts_dir / f"{sha}.golf").write_bytes(other.read_bytes())
    failed = [submit(client, sha, ["slot"], owner="dave", params=LONG)["id"] for _ in range(2)]
    for job_id in failed:
        assert wait_job(client, job_id, owner="dave")["state"] == "failed"
    _wait_quiet(client, failed, "dave", timeout=5)
    assert upload(client, mine.read_bytes(), owner="dave").status_code == 200
    again = [submit(client, sha, ["slot"], owner="dave", params=LONG)["id"] for _ in range(2)]
    for job_id in again:
        client.delete(f"/v1/jobs/{job_id}", headers=auth("dave"))
    _wait_quiet(client, again, "dave")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"attention": "flash"}, "attention 'flash' needs flash-attn on a CUDA device"),
        ({"slot_kernel": "triton"}, "slot_kernel 'triton' needs Triton on a CUDA device"),
    ],
)
def test_settings_the_pool_cannot_run_are_422(client, artifact_id, params, fragment) -> None:
    """N12: CPU workers: refused at submission, naming the setting, instead of failing later."""
    body = {"artifact": artifact_id, "dataset": "demo", "protocols": ["slot"]}
    response = client.post(
        "/v1/jobs", json=body | {"params": {"seq_len": 64} | params}, headers=auth("alice")
    )
    assert response.status_code == 422 and fragment in response.json()["detail"], response.text


# ------------------------------------------------------------------ N3, N6, N11: requests


def test_multipart_is_refused_off_the_upload_route_unread(client) -> None:
    """N3: a 4 MB body labelled multipart to /v1/jobs is 415 at once, not read whole."""
    headers = auth("alice") | {"Content-Type": "multipart/form-data; boundary=x"}
    response = client.post("/v1/jobs", content=b"x" * (4 << 20), headers=headers)
    assert response.status_code == 415 and "upload routes only" in response.json()["detail"]
    headers = auth("alice") | {"Content-Type": "text/plain"}
    response = client.post("/v1/jobs", content=b"x" * (1 << 20), headers=headers)
    assert response.status_code == 413


def test_cursors_and_offsets_are_strict_and_bounded(client, artifact_id: str) -> None:
    """N6: the three 500s of the probe (and their neighbours) are 422s."""
    job = wait_job(client, submit(client, artifact_id, ["sliding"])["id"])
    path = f"/v1/jobs/{job['id']}"
    for query in (
        {"cursor": "sliding:99999999999999999999"},
        {"cursor": "sliding:²"},
        {"cursor": "sliding:-1"},
        {"cursor": "sliding: 1"},
        {"limit": "1e20"},
    ):
        response = client.get(path + "/windows", params=query, headers=auth("alice"))
        assert response.status_code == 422, (query, response.text)
    for offset in ("1e20", str(2**63), "-1"):
        response = client.get(path + "/shards", params={"offset": offset}, headers=auth("alice"))
        assert response.status_code == 422, (offset, response.text)
    ok = client.get(path + "/windows", params={"cursor": "sliding:3"}, headers=auth("alice"))
    assert ok.status_code == 200 and ok.json()["windows"][0]["window"] == 4
    bad = client.get("/v1/jobs", params={"cursor": "j_zz"}, headers=auth("alice"))
    assert bad.status_code == 422


@pytest.mark.parametrize(
    "extra",
    [
        {"priority": True},
        {"priority": "5"},
        {"priority": 5.0},
        {"priority": 10**6},
        {"params": {"max_windows": 2**64}},
        {"params": {"max_windows": True}},
    ],
)
def test_job_fields_are_strict_and_bounded(client, artifact_id: str, extra: dict) -> None:
    """N11: no coercion of booleans, strings or floats; no unbounded integers echoed back."""
    body = {"artifact": artifact_id, "dataset": "demo", "protocols": ["sliding"]} | extra
    response = client.post("/v1/jobs", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


def test_the_openapi_document_lists_the_errors_sent(client) -> None:
    """N11: every /v1 operation documents 401 and a string-detail 422; path ids 404."""
    doc = client.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in operations.items():
            codes = set(op["responses"])
            assert {"401", "422"} <= codes, (method, path, codes)
            if "{" in path:
                assert "404" in codes, (method, path)
            schema = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
    assert "429" in doc["paths"]["/v1/jobs"]["post"]["responses"]
    assert "429" in doc["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]


# ------------------------------------------------------------------ N4: reads and streams


def test_job_lists_are_paged(client, artifact_id: str) -> None:
    ids = [submit(client, artifact_id, ["plain"], owner="bob")["id"] for _ in range(3)]
    seen, cursor = [], None
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=query, headers=auth("bob")).json()
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)
    everyone = client.get("/v1/jobs", params={"limit": 1000}, headers=auth(ADMIN)).json()
    assert set(seen) == {j["id"] for j in everyone["jobs"] if j["owner"] == "bob"}
    for job_id in ids:
        wait_job(client, job_id, owner="bob")
    # Another owner's job id is not a cursor of alice's listing.
    bad = client.get("/v1/jobs", params={"cursor": ids[0]}, headers=auth("alice"))
    assert bad.status_code == 422


def test_streams_share_one_feed_and_are_capped(client, artifact_id: str) -> None:
    """N4: open streams are capped per owner (3) with 429; the streams of one job share one
    feed, whose frames all of them receive, ending with the report."""
    job = submit(client, artifact_id, ["sliding", "slot"], owner="alice")
    url = f"/v1/jobs/{job['id']}/events"
    hub = client.app.state.golf.hub

    async def follow(http: httpx.AsyncClient) -> list[str]:
        async with http.stream("GET", url, headers=auth("alice")) as response:
            assert response.status_code == 200
            return [line async for line in response.aiter_lines() if line.startswith("event:")]

    async def scenario() -> tuple[list[list[str]], int, int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            tasks = [asyncio.create_task(follow(http)) for _ in range(3)]
            while hub.open_streams < 3:
                await asyncio.sleep(0.01)
            refused = await http.get(url, headers=auth("alice"))
            ndjson = await http.get(url.replace("events", "windows.ndjson"), headers=auth("alice"))
            other = await http.get(url.replace("events", "windows.ndjson"), headers=auth(ADMIN))
            feeds = len(hub._feeds)
            streams = await asyncio.gather(*tasks)
            return streams, (refused.status_code, ndjson.status_code, other.status_code), feeds

    # The app's loop runs in the TestClient's portal: run the scenario there.
    events, statuses, feeds = client.portal.call(scenario)
    # alice's fourth stream, an event stream or windows.ndjson alike, is refused; the
    # admin's stream of the same job counts against the admin's own cap, not hers.
    assert statuses == (429, 429, 200) and feeds == 1
    for stream in events:
        assert stream[-1] == "event: report" and stream.count("event: progress") >= 1
    assert hub.open_streams == 0 and not hub._feeds


# ------------------------------------------------------------------ N7: forged windows


def test_window_checksums_are_keyed_with_a_secret_outside_the_database(
    client, settings, artifact_id: str
) -> None:
    """N7: the probe's forgery (edit rows, recompute their plain sha256 checksums) no longer
    passes; nor does editing the running totals or a shard's digest alone."""
    import hashlib

    job = wait_job(client, submit(client, artifact_id, ["sliding"])["id"])
    assert job["state"] == "succeeded"
    store = client.app.state.golf.store
    key_file = settings.record_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_hex = key_file.read_text().strip()
    assert key_hex.encode() not in settings.db_path.read_bytes()
    assert build_report(store, job["id"], {})["reports"]
    with sqlite3.connect(settings.db_path) as db:
        rows = db.execute(
            "SELECT protocol, window, nll_sum, tokens, bytes FROM windows WHERE job = ?"
            " AND window < 10",
            (job["id"],),
        ).fetchall()
        for protocol, window, nll, tokens, n_bytes in rows:
            nll -= 1.0
            text = f"{job['id']}|{protocol}|{window}|{float(nll).hex()}|{tokens}|{n_bytes}"
            db.execute(
                "UPDATE windows SET nll_sum = ?, checksum = ? WHERE job = ? AND window = ?",
                (nll, hashlib.sha256(text.encode()).hexdigest()[:32], job["id"], window),
            )
    with pytest.raises(IntegrityError, match="10 stored window records fail their checksum"):
        build_report(store, job["id"], {})

    job = wait_job(client, submit(client, artifact_id, ["sliding"])["id"])
    with sqlite3.connect(settings.db_path) as db:
        db.execute("UPDATE totals SET nll_sum = nll_sum * 0.99 WHERE job = ?", (job["id"],))
    with pytest.raises(IntegrityError, match="running totals"):
        build_report(store, job["id"], {})

    job = wait_job(client, submit(client, artifact_id, ["sliding"])["id"])
    with sqlite3.connect(settings.db_path) as db:
        db.execute("UPDATE shards SET digest = 'x' WHERE job = ? AND shard = 1", (job["id"],))
    with pytest.raises(IntegrityError, match="sliding#1: .* shard digest"):
        build_report(store, job["id"], {})


# ------------------------------------------------------------------ N8: durability


def test_a_finished_job_the_database_loses_is_restored_loudly(
    client, settings, artifact_id: str, caplog
) -> None:
    """N8: the report and window records are files before the job is marked done; a job
    the database lost (rows gone, or rolled back to running) is restored from them."""
    s = client.app.state.golf
    lost = wait_job(client, submit(client, artifact_id, ["sliding", "slot"])["id"])
    rolled = wait_job(client, submit(client, artifact_id, ["sliding"])["id"])
    reports = {
        j["id"]: client.get(f"/v1/jobs/{j['id']}/report", headers=auth("alice")).json()
        for j in (lost, rolled)
    }
    windows = client.get(f"/v1/jobs/{lost['id']}/windows", headers=auth("alice")).json()
    assert (settings.results_dir / "jobs" / lost["id"]).is_file()
    with sqlite3.connect(settings.db_path) as db:
        for table, column in (("jobs", "id"), ("shards", "job"), ("windows", "job")):
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (lost["id"],))
        db.execute("UPDATE jobs SET state = 'running', report = NULL WHERE id = ?", (rolled["id"],))
    assert client.get(f"/v1/jobs/{lost['id']}", headers=auth("alice")).status_code == 404
    with caplog.at_level("ERROR", logger="service.results"):
        restored = Results(settings.results_dir).reconcile(s.store)
    assert sorted(restored) == sorted([lost["id"], rolled["id"]])
    assert sum("lost finished job" in r.message for r in caplog.records) == 2
    for job_id, report in reports.items():
        job = client.get(f"/v1/jobs/{job_id}", headers=auth("alice")).json()
        assert job["state"] == "succeeded"
        again = client.get(f"/v1/jobs/{job_id}/report", headers=auth("alice")).json()
        assert again == report
    assert client.get(f"/v1/jobs/{lost['id']}/windows", headers=auth("alice")).json() == windows
    assert build_report(s.store, lost["id"], {})["reports"] == reports[lost["id"]]["reports"]


def test_healthz_reports_a_failed_quick_check(client, tmp_path: Path) -> None:
    """N8: /healthz said ok on a damaged database (SELECT 1); it reports the periodic
    quick_check instead, here run on a copy whose pages were overwritten."""
    from service.reads import ReadPool

    s = client.app.state.golf
    assert client.get("/healthz").json()["db"] is True
    damaged = tmp_path / "damaged.sqlite"
    with sqlite3.connect(damaged) as db:
        db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 200) for i in range(2000)])
        db.execute("CREATE INDEX tb ON t (b)")
    data = bytearray(damaged.read_bytes())
    data[4096 * 5 : 4096 * 5 + 512] = b"\xa5" * 512
    damaged.write_bytes(bytes(data))
    saved = s.health.reads
    s.health.reads = ReadPool(damaged, threads=1)
    try:
        assert client.portal.call(s.health.check) is not None
        health = client.get("/healthz").json()
        assert health["ok"] is False and health["db"] is False and health["db_error"]
    finally:
        s.health.reads.close()
        s.health.reads = saved
        client.portal.call(s.health.check)
    assert client.get("/healthz").json()["db"] is True


# ------------------------------------------------------------------ N5: connections


def test_half_sent_request_heads_are_closed_and_connections_capped(
    ray_cluster, root: Path, demo_data: Path
) -> None:
    """N5: a connection holding half a header is closed after header_timeout_s, a keep-alive
    connection idle after a response likewise, and connections past the cap at once."""
    import threading

    import uvicorn

    from service.app import create_app
    from service.cli import uvicorn_config

    settings = make_settings(
        root / "n5", demo_data, port=0, header_timeout_s=1.0, max_connections=8, workers=1
    )
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.settimeout(5)
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server, no response
        assert 0.8 < time.monotonic() - started < 3.0
        many = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        time.sleep(0.3)
        closed = 0
        for sock in many:
            sock.settimeout(0.2)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass  # still open
        assert closed >= 12  # 20 opened, at most 8 kept
        for sock in many:
            sock.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/healthz").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_garbage_in_the_wal_loses_no_finished_job(tmp_path: Path, demo_data: Path) -> None:
    """N8, the probe's attack: bytes overwritten in a live WAL frame of a crash image make
    SQLite drop every frame from there on, finished jobs included; the result files put
    them back. (No Ray: the store and the result files alone.)"""
    import shutil
    from dataclasses import astuple

    from golf.data.shards import Dataset
    from golf.engine.evaluate import WindowRecord
    from golf.spec.jobplan import plan_job as plan
    from service.store import ShardKey, Store
    from workers.integrity import record_checksum, shard_digest

    key = b"k" * 32
    path = tmp_path / "live" / "golf.sqlite"
    store = Store(path, record_key=key)
    store._db.execute("PRAGMA wal_autocheckpoint=0")  # the crash comes before a checkpoint
    results = Results(tmp_path / "live" / "results")
    params = EvalParams.parse({"seq_len": 64, "stride": 32, "batch_windows": 8, "max_windows": 64})
    n_tokens = Dataset.open(demo_data).val_tokens(64).size
    job_plan = plan(n_tokens, ["sliding"], params, 2)
    jobs = []
    for j in range(4):
        job_id = store.create_job(
            owner="alice",
            artifact="a" * 64,
            dataset="demo",
            dataset_sha256="d" * 64,
            params=params,
            plan=job_plan,
            priority=0,
            max_active=8,
            budget=1e12,
        )
        for shard in job_plan.shards:
            k = ShardKey(job_id, "sliding", shard.shard)
            store.start_shard(k, "alice", "worker-0")
            lo, hi = shard.batch_lo * 8, min(shard.batch_hi * 8, 64)
            records = [WindowRecord(w, 1.5 + w + j, 32, 100 + w) for w in range(lo, hi)]
            sums = [record_checksum(key, job_id, "sliding", *astuple(r)) for r in records]
            store.add_windows(k, records, sums)
            store.finish_shard(k, 0.1, None, shard_digest(sums))
        report = {"job": job_id, "val_bpb": 1.0 + j}
        results.save(job_id, store.snapshot(job_id, report))
        assert store.succeed_job(job_id, report)
        jobs.append(job_id)
    crash = tmp_path / "crash"
    crash.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{path}{suffix}", crash / f"golf.sqlite{suffix}")
    store.close()
    wal = bytearray((crash / "golf.sqlite-wal").read_bytes())
    page = int.from_bytes(wal[8:12], "big")
    frames = (len(wal) - 32) // (24 + page)
    at = 32 + (frames // 3) * (24 + page) + 24 + 64
    wal[at : at + 64] = bytes(range(64))
    (crash / "golf.sqlite-wal").write_bytes(bytes(wal))

    damaged = Store(crash / "golf.sqlite", record_key=key)
    lost = [j for j in jobs if damaged.job_state(j) != "succeeded"]
    assert lost, "the garbage frame cost nothing: the attack did not reproduce"
    restored = Results(tmp_path / "live" / "results").reconcile(damaged)
    assert sorted(restored) == sorted(lost)
    for j, job_id in enumerate(jobs):
        row = damaged.job(job_id)
        assert row is not None and row.state == "succeeded" and row.report["val_bpb"] == 1.0 + j
        assert len(damaged.verified_windows(job_id, "sliding")) == 64
    damaged.close()
