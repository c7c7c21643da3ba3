"""`ttt-lora` through the service: its document batches planned as shards, run on 1 or 2
workers, give `golf eval`'s records and report to the bit; the records pass the service's
integrity checks (a row moved to another shard does not); record modes are refused (the
chains, `ttt` and `ttt-phased`, run on gangs: tests/test_service_chain.py)."""

import sqlite3
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from service_support import (
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

from golf.data.shards import Dataset
from golf.engine.evaluate import evaluate
from golf.engine.runner import EvalInputs
from golf.spec.documents import doc_batches, find_documents
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from service.reports import build_report
from workers.integrity import IntegrityError
from workers.synthetic import synthetic_shard
from workers.task import Blob, ShardTask

# Tiny LoRA: rank 4, 32-target chunks, 48 documents per batch: the demo val's documents
# (a few hundred) make a handful of batches, a few seconds of CPU in all.
LORA = dict(
    PARAMS,
    lora_rank=4,
    lora_chunk=32,
    lora_batch_docs=48,
    lora_lr=0.01,
)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    return make_artifact(demo_data, tmp_path_factory.mktemp("artifact") / "tiny.golf", seed=1)


@pytest.fixture(scope="module")
def local(artifact: Path, demo_data: Path) -> tuple[list[dict], list[dict]]:
    """`golf eval`'s ttt-lora report and its per-document records, in this process."""
    inputs = EvalInputs.load(str(artifact), str(demo_data))
    params = EvalParams.parse(LORA)
    tokens = inputs.dataset.val_tokens(params.seq_len)
    records = evaluate(inputs.model, tokens, inputs.byte_lut, "ttt-lora", params)
    rows = sorted(
        ({"protocol": "ttt-lora"} | asdict(r) for r in records), key=lambda r: r["window"]
    )
    return without_elapsed(local_reports(artifact, demo_data, ["ttt-lora"], LORA)), rows


def batch_count(demo_data: Path) -> int:
    tokens = Dataset.open(demo_data).val_tokens(LORA["seq_len"])
    return len(doc_batches(find_documents(tokens), LORA["lora_batch_docs"]))


def service_windows(client, job_id: str) -> list[dict]:
    rows, cursor = [], None
    while True:
        query = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = client.get(f"/v1/jobs/{job_id}/windows", params=query, headers=auth("alice"))
        assert page.status_code == 200, page.text
        rows += page.json()["windows"]
        if (cursor := page.json()["next_cursor"]) is None:
            return rows


@pytest.mark.parametrize(("workers", "batches_per_shard"), [(1, 1), (2, 2), (4, 1)])
def test_ttt_lora_on_the_service_equals_golf_eval(
    ray_cluster,
    tmp_path: Path,
    demo_data: Path,
    artifact: Path,
    local: tuple[list[dict], list[dict]],
    workers: int,
    batches_per_shard: int,
) -> None:
    expected_reports, expected_rows = local
    n_batches = batch_count(demo_data)
    assert n_batches >= 4  # several shards, documents interleaved across them
    settings = make_settings(
        tmp_path, demo_data, workers=workers, batches_per_shard=batches_per_shard
    )
    with serve(settings) as client:
        artifact_id = upload(client, artifact.read_bytes()).json()["id"]
        job = wait_job(client, submit(client, artifact_id, ["ttt-lora"], params=LORA)["id"])
        assert job["state"] == "succeeded", job["error"]
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
        rows = service_windows(client, job["id"])
        store = client.app.state.golf.store
        assert build_report(store, job["id"], {})["reports"]  # the integrity checks pass
        # A row moved to another shard keeps its checksum, but both shards' digests break.
        with sqlite3.connect(settings.db_path) as db:
            db.execute(
                "UPDATE windows SET shard = (shard + 1) % ? WHERE job = ? AND window = ?",
                (len(job["shards"]), job["id"], rows[0]["window"]),
            )
        with pytest.raises(IntegrityError, match="shard digest"):
            build_report(store, job["id"], {})
    assert len(job["shards"]) == -(-n_batches // batches_per_shard)
    (got,) = without_elapsed(report["reports"])
    assert got == expected_reports[0]
    assert (got["windows"], got["windows_total"], got["partial"]) == (len(rows), len(rows), False)
    assert report["environment"]["workers"] == workers
    assert rows == expected_rows  # every document's NLL sum, bit for bit
    assert len(rows) == len(find_documents(Dataset.open(demo_data).val_tokens(64)))
    assert np.all(np.diff([r["window"] for r in rows]) > 0)


@pytest.mark.parametrize(
    ("protocol", "extra", "fragment"),
    [
        ("ttt-phased", {"ttt_mode": "record"}, "the service runs ttt_mode=canonical"),
        ("ttt-lora", {"ttt_mode": "record"}, "the service runs ttt_mode=canonical"),
    ],
)
def test_record_modes_are_refused_with_one_line(
    ray_cluster, tmp_path: Path, demo_data: Path, artifact: Path, protocol, extra, fragment
) -> None:
    with serve(make_settings(tmp_path, demo_data)) as client:
        artifact_id = upload(client, artifact.read_bytes()).json()["id"]
        body = {
            "artifact": artifact_id,
            "dataset": "demo",
            "protocols": [protocol],
            "params": LORA | extra,
        }
        response = client.post("/v1/jobs", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert fragment in detail and "golf eval" in detail and "\n" not in detail


def test_the_synthetic_scorer_refuses_document_batches() -> None:
    """The load-test scorer makes up window-plan records; for ttt-lora it would make up
    the wrong units, so it says so in one line instead of failing the totals check."""
    blob = Blob("k", None)
    task = ShardTask(
        job="j",
        protocol="ttt-lora",
        shard=0,
        batch_lo=0,
        batch_hi=1,
        params=EvalParams.parse(LORA),
        artifact=blob,
        max_decompressed=1,
        tokens=blob,
        byte_lut=blob,
    )
    with pytest.raises(ConfigError, match="window plans only, not 'ttt-lora'"):
        next(synthetic_shard(task, "synthetic"))
