"""A CaseOps dataset on the service: workers count bytes from its sidecar, as `golf eval`
does, for window protocols and for ttt-lora's per-document records, and reports say so.

The demo's sidecar holds the tokenizer's own counts, which would hide a service that read
the LUTs instead; here every count is doubled (BOS stays 0), so the two sources differ."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
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

from golf.data.demo import build_demo
from golf.data.shards import Dataset, read_shard, write_shard
from tests.conftest import SMALL_DEMO

LORA = dict(PARAMS, lora_rank=4, lora_chunk=32, lora_batch_docs=48, lora_lr=0.01)
PROTOCOLS = ["sliding", "ttt-lora"]


@pytest.fixture(scope="module")
def caseops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("caseops")
    build_demo(path, console=Console(quiet=True), byte_sidecar=True, **SMALL_DEMO)
    (sidecar,) = Dataset.open(path).sidecar_files
    write_shard(sidecar, np.asarray(read_shard(sidecar)) * 2)
    return path


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, caseops: Path) -> Path:
    return make_artifact(caseops, tmp_path_factory.mktemp("artifact") / "tiny.golf", seed=1)


def test_sidecar_bytes_on_the_service_equal_golf_eval(
    ray_cluster, tmp_path: Path, caseops: Path, artifact: Path
) -> None:
    expected = without_elapsed(local_reports(artifact, caseops, PROTOCOLS, LORA))
    assert [r["byte_source"] for r in expected] == ["sidecar", "sidecar"]
    luts = tmp_path / "luts"  # the same tokens without the sidecar: the tables' bytes
    luts.mkdir()
    for name in ("demo_val_000000.bin", "tokenizer.model"):
        shutil.copy(caseops / name, luts / name)
    (by_luts,) = local_reports(artifact, luts, ["sliding"], LORA)
    assert expected[0]["bytes"] == 2 * by_luts["bytes"]  # the sidecar did count
    with serve(make_settings(tmp_path, caseops, workers=1, batches_per_shard=1)) as client:
        artifact_id = upload(client, artifact.read_bytes()).json()["id"]
        job = wait_job(client, submit(client, artifact_id, PROTOCOLS, params=LORA)["id"])
        assert job["state"] == "succeeded", job["error"]
        report = client.get(f"/v1/jobs/{job['id']}/report", headers=auth("alice")).json()
    assert without_elapsed(report["reports"]) == expected
