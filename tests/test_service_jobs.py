"""Apps of their own: worker and shard counts, restart mid-job, fair dispatch under load."""

import sqlite3
from pathlib import Path

import pytest
from service_support import (
    KEYS,
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

PROTOCOLS = ["sliding", "slot-causal"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    return make_artifact(demo_data, tmp_path_factory.mktemp("artifact") / "tiny.golf", seed=1)


@pytest.fixture(scope="module")
def expected(artifact: Path, demo_data: Path) -> list[dict]:
    return without_elapsed(local_reports(artifact, demo_data, PROTOCOLS, PARAMS))


def run_job(client, artifact: Path, protocols: list[str], params=PARAMS) -> dict:
    artifact_id = upload(client, artifact.read_bytes()).json()["id"]
    job = wait_job(client, submit(client, artifact_id, protocols, params=params)["id"])
    assert job["state"] == "succeeded", job["error"]
    return job


@pytest.mark.parametrize(("workers", "batches_per_shard"), [(1, 1), (4, 3)])
def test_same_report_any_workers_and_shards(
    ray_cluster,
    tmp_path: Path,
    demo_data: Path,
    artifact: Path,
    expected: list[dict],
    workers: int,
    batches_per_shard: int,
) -> None:
    settings = make_settings(
        tmp_path, demo_data, workers=workers, batches_per_shard=batches_per_shard
    )
    with serve(settings) as client:
        job = run_job(client, artifact, PROTOCOLS)
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    assert len(job["shards"]) == 2 * -(-6 // batches_per_shard)
    assert without_elapsed(report["reports"]) == expected
    assert report["environment"]["workers"] == workers


def test_restart_mid_job_resumes(
    ray_cluster, tmp_path: Path, demo_data: Path, artifact: Path
) -> None:
    params = dict(PARAMS, slot_steps=24, max_windows=64)
    settings = make_settings(tmp_path, demo_data, workers=1, batches_per_shard=1)
    with serve(settings) as client:
        artifact_id = upload(client, artifact.read_bytes()).json()["id"]
        job = submit(client, artifact_id, ["slot"], params=params)
        while True:  # stop the service once some, not all, shards are done
            shards = wait_job(client, job["id"], until=("running", "succeeded"))["shards"]
            done = sum(s["state"] == "done" for s in shards)
            if done:
                break
    assert 0 < done < len(shards) == 8, "the job must be stopped mid-way"
    with serve(settings) as client:
        resumed = wait_job(client, job["id"])
        assert resumed["state"] == "succeeded", resumed["error"]
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    local = local_reports(artifact, demo_data, ["slot"], params)
    assert without_elapsed(report["reports"]) == without_elapsed(local)
    assert report["reports"][0]["tokens"] == 64 + 63 * 32
    db = sqlite3.connect(settings.db_path)
    assert db.execute("SELECT count(*) FROM windows").fetchone() == (64,)


def test_fair_dispatch_under_load(
    ray_cluster, tmp_path: Path, demo_data: Path, artifact: Path
) -> None:
    """20 jobs of 4 owners, queued owner after owner: dispatch interleaves the owners."""
    variants = [dict(PARAMS, batch_windows=4, max_windows=8 * (i + 2)) for i in range(5)]
    want = [local_reports(artifact, demo_data, ["sliding"], p)[0]["val_bpb"] for p in variants]
    settings = make_settings(tmp_path, demo_data, max_jobs_per_owner=5)
    with serve(settings) as client:  # its workers are still starting: everything queues
        for owner in KEYS:  # each owner uses only what they uploaded
            artifact_id = upload(client, artifact.read_bytes(), owner=owner).json()["id"]
        jobs = {
            submit(client, artifact_id, ["sliding"], owner=owner, params=p)["id"]: (owner, i)
            for owner in KEYS
            for i, p in enumerate(variants)
        }
        for job_id, (owner, i) in jobs.items():
            job = wait_job(client, job_id, owner=owner)
            assert job["state"] == "succeeded", job["error"]
            assert job["running"]["sliding"]["val_bpb"] is not None
            report = client.get(f"/v1/jobs/{job_id}/report", headers=auth(owner)).json()
            assert report["reports"][0]["val_bpb"] == want[i]
        dispatches = client.app.state.golf.store.dispatches()
        last_submitted = max(client.app.state.golf.store.job(j).created_at for j in jobs)
    assert dispatches[0]["at"] >= last_submitted, "dispatch began before the queue was full"
    owners = [d["owner"] for d in dispatches]
    assert len(owners) == 4 * sum(i + 2 for i in range(5))  # 2(i+2) batches, 2 per shard
    # While every owner has work left, each round of 4 dispatches serves all 4 owners.
    rounds = min(owners.count(o) for o in KEYS)
    for r in range(rounds):
        assert sorted(owners[4 * r : 4 * r + 4]) == sorted(KEYS), owners


@pytest.mark.slow
@pytest.mark.parametrize("batches_per_shard", [1, 2, 5])
def test_every_protocol_any_shard_size(
    ray_cluster, tmp_path: Path, demo_data: Path, artifact: Path, batches_per_shard: int
) -> None:
    protocols = ["plain", "sliding", "slot", "slot-causal"]
    params = dict(PARAMS, max_windows=None, batch_windows=16)
    settings = make_settings(tmp_path, demo_data, batches_per_shard=batches_per_shard)
    with serve(settings) as client:
        job = run_job(client, artifact, protocols, params)
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    local = local_reports(artifact, demo_data, protocols, params)
    assert without_elapsed(report["reports"]) == without_elapsed(local)
