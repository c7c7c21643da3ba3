"""POST /v1/artifacts/import: `golf import RECORD_DIR --artifact F` on the server.

The route runs golf.formats.board.import_record, the function `golf import` runs, on the
uploaded folder: the stored `.golf` must be byte for byte the CLI's, its provenance must
name the record, its code and the original artifact, and a job on it must report what
`golf eval` reports on the CLI's file. Hostile forms and files are each one 4xx line.

Most tests run the artifacts router in a minimal app (settings, datasets, a recording
store; no Ray), as tests/test_service_reviews.py does; the eval test runs the real app
(its request limits included) on local Ray. The record folder is synthetic (our own lines
in the records' style), the artifact the NaiveBaseline golden fixture (written by that
record's own code); with the official board checked out, a real folder (03-25) too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import lzma
import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from record_support import shim
from typer.testing import CliRunner

from clients.sdk import _record_form, record_files
from golf.cli import app as golf_app
from service.auth import Caller, require_caller
from service.datasets import Datasets
from service.errors import install_handlers
from service.routers import artifacts

FIXTURES = Path(__file__).parent / "fixtures" / "records"
BASELINE = FIXTURES / "2026-03-17_NaiveBaseline"
BASELINE_DOC = json.loads((BASELINE / "record.json").read_text())
ARTIFACT = BASELINE / BASELINE_DOC["artifact"]["file"]
SP384 = FIXTURES / "_data" / "sp384"
TOKENIZER = SP384 / BASELINE_DOC["data"]["tokenizer"]
SETS = [f"{k}={BASELINE_DOC['env'][k]}" for k in ("NUM_LAYERS", "MODEL_DIM", "NUM_HEADS",
                                                  "NUM_KV_HEADS", "VOCAB_SIZE")]  # fmt: skip
OFFICIAL = Path(
    os.environ.get("GOLF_OFFICIAL_RECORDS", "/work/pg/official/records/track_10min_16mb")
)
UPLOAD_CAP = 4 << 20
DECOMPRESSED_CAP = 4 << 20

SCRIPT = """
import os
import torch
MARKER = open("{marker}", "w")  # runs only if someone executes this file

class Hyperparameters:
    vocab_size = int(os.environ.get("VOCAB_SIZE", 1024))
    num_layers = int(os.environ.get("NUM_LAYERS", 9))
    model_dim = int(os.environ.get("MODEL_DIM", 512))
    num_heads = int(os.environ.get("NUM_HEADS", 8))
    num_kv_heads = int(os.environ.get("NUM_KV_HEADS", 4))
    logit_softcap = float(os.environ.get("LOGIT_SOFTCAP", 30.0))
    rope_base = float(os.environ.get("ROPE_BASE", 10000.0))
    seed = int(os.environ.get("SEED", 1337))

class Rotary:
    def __init__(self, dim, base=10000.0):
        self.dim = dim

class MLP:
    def forward(self, x):
        x = torch.relu(self.fc(x))
        return self.proj(x.square())
"""
LOG = "Hyperparameters:\n  seed: 42\n  rope_base: 20000.0\n====\nstep:1/6 train_loss:6.0\n"


def make_record(root: Path, name: str = "2026-01-01_Synthetic", code: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    code = code if code is not None else SCRIPT.format(marker=root / "executed")
    (folder / "train_gpt.py").write_text(code)
    (folder / "train_seed42.log").write_text(LOG)
    (folder / "submission.json").write_text(json.dumps({"val_bpb": 1.0}))
    (folder / "README.md").write_text("# synthetic\n")
    (folder / "tokenizer.bin").write_bytes(b"\x00not a record file")  # not sent
    return folder


def served_data(root: Path) -> Path:
    """The harness's sp384 val shard and tokenizer as a dataset folder of the service."""
    data = root / "sp384"
    data.mkdir(parents=True)
    shutil.copyfile(TOKENIZER, data / "tokenizer.model")
    shutil.copyfile(SP384 / "fineweb_val_000000.bin", data / "fineweb_val_000000.bin")
    return data


def cli_import(folder: Path, out: Path, sets: list[str], artifact: Path = ARTIFACT) -> str:
    """`golf import` itself; its stderr (one line per decision)."""
    args = ["import", str(folder), "--artifact", str(artifact), "--tokenizer", str(TOKENIZER)]
    args += ["--out", str(out), *(a for kv in sets for a in ("--set", kv))]
    result = CliRunner().invoke(golf_app, args)
    assert result.exit_code == 0, result.stderr
    return result.stderr


@pytest.fixture()
def server(tmp_path: Path) -> Any:
    """The artifacts router in a minimal app: a client, its settings and stored rows."""
    app = FastAPI()
    install_handlers(app)
    app.include_router(artifacts.router)
    served_data(tmp_path / "data")
    settings = SimpleNamespace(
        uploads_dir=tmp_path / "state" / "uploads",
        artifacts_dir=tmp_path / "state" / "artifacts",
        max_upload_bytes=UPLOAD_CAP,
        max_decompressed_bytes=DECOMPRESSED_CAP,
    )
    stored: list[tuple[Any, str, str | None]] = []
    store = SimpleNamespace(put_artifact=lambda *row: stored.append(row))
    app.state.golf = SimpleNamespace(
        settings=settings,
        validations=asyncio.Semaphore(1),
        datasets=Datasets(tmp_path / "data"),
        store=store,
    )
    app.dependency_overrides[require_caller] = lambda: Caller("alice")
    with TestClient(app) as client:
        yield SimpleNamespace(client=client, settings=settings, stored=stored)


def sdk_post(client: TestClient, folder: Path, sets: list[str], artifact: Path = ARTIFACT) -> Any:
    """The SDK's form (clients.sdk), posted through the test client."""
    with ExitStack() as stack:
        form = _record_form(stack, folder, artifact, "sp384", sets, None)
        return client.post("/v1/artifacts/import", **form)


def test_the_service_import_is_golf_import(server, tmp_path: Path) -> None:
    folder = make_record(tmp_path / "rec")
    assert [p.name for p in record_files(folder)] == [
        "README.md", "submission.json", "train_gpt.py", "train_seed42.log"
    ]  # fmt: skip
    expected = tmp_path / "cli.golf"
    decisions = cli_import(folder, expected, SETS)
    response = sdk_post(server.client, folder, SETS)
    assert response.status_code == 200, response.text
    doc = response.json()
    stored = server.settings.artifacts_dir / f"{doc['id']}.golf"
    assert stored.read_bytes() == expected.read_bytes()  # the same bytes, so the same id
    assert doc["id"] == hashlib.sha256(expected.read_bytes()).hexdigest()
    assert doc["decisions"] == decisions.strip().splitlines()
    assert "rope_base: 20000.0 from rope_base (log)" in doc["decisions"]  # the log was read
    assert (doc["record"], doc["arch"]) == ("2026-01-01_Synthetic", "gpt-relu2")
    assert doc["format"] == "int8_clean_per_row_v1 + zlib"
    notes = doc["provenance"]["notes"]
    assert notes["record"] == "2026-01-01_Synthetic"
    assert notes["code_file"] == "train_gpt.py"
    assert (
        notes["code_sha256"] == hashlib.sha256((folder / "train_gpt.py").read_bytes()).hexdigest()
    )
    assert notes["imported_from"] == ARTIFACT.name
    assert notes["imported_sha256"] == BASELINE_DOC["artifact"]["sha256"]
    assert doc["code_bytes"] == len((folder / "train_gpt.py").read_bytes())
    ((summary, owner, name),) = server.stored
    assert (summary.sha256, owner, name) == (doc["id"], "alice", "2026-01-01_Synthetic.golf")
    assert not (tmp_path / "executed").exists()  # the code was read, never run
    assert list(server.settings.uploads_dir.iterdir()) == []  # nothing left behind


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="official records not checked out here")
def test_a_real_record_folder_imports_as_golf_import_does(server, tmp_path: Path) -> None:
    """03-25 (banked GPTQ, a shim-free 100 KB train_gpt.py, three logs, README): its own
    fixture artifact, the harness's environment as --set, as the golden tests import it."""
    name = "2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072"
    record = json.loads((FIXTURES / name / "record.json").read_text())
    from golf.record import read_record

    read = set(read_record(OFFICIAL / name).code_hparams().env.values())
    sets = [f"{k}={v}" for k, v in record["env"].items() if k in read]
    artifact = FIXTURES / name / record["artifact"]["file"]
    expected = tmp_path / "cli.golf"
    cli_import(OFFICIAL / name, expected, sets, artifact)
    response = sdk_post(server.client, OFFICIAL / name, sets, artifact)
    assert response.status_code == 200, response.text
    assert response.json()["arch"] == "gpt-sp1024"
    stored = server.settings.artifacts_dir / f"{response.json()['id']}.golf"
    assert stored.read_bytes() == expected.read_bytes()


# ------------------------------------------------------------------ hostile input


def post_parts(
    client: TestClient,
    files: list[tuple[str, bytes]],
    artifact: tuple[str, bytes] | None = ("final_model.int8.ptz", ARTIFACT.read_bytes()),
    **data: Any,
) -> Any:
    parts = [("file", (name, body, "application/octet-stream")) for name, body in files]
    if artifact is not None:
        parts.append(("artifact", (artifact[0], artifact[1], "application/octet-stream")))
    fields = {"record": "2026-01-01_Synthetic", "dataset": "sp384", "set": SETS} | data
    return client.post("/v1/artifacts/import", files=parts, data=fields)


def code(tmp_path: Path) -> bytes:
    return SCRIPT.format(marker=tmp_path / "executed").encode()


def refused(response: Any, status: int, fragment: str) -> None:
    detail = response.json()["detail"]
    assert response.status_code == status, response.text
    assert fragment in detail and "\n" not in detail, detail


def test_a_shim_that_decodes_to_a_bomb_is_refused(server, tmp_path: Path) -> None:
    bomb = shim("#" * 5_000_000)  # a few KB that decompress past the 4,000,000-byte cap
    assert len(bomb) < 10_000
    refused(post_parts(server.client, [("train_gpt.py", bomb.encode())]), 422, "past the 4,000,000")


def test_unparsable_code_is_refused(server) -> None:
    response = post_parts(server.client, [("train_gpt.py", b"class Hyperparameters(:\n")])
    refused(response, 422, "train_gpt.py")


@pytest.mark.parametrize(
    ("sets", "fragment"),
    [
        (["NOT_A_KNOB=1"], "--set NOT_A_KNOB: not a Hyperparameters field"),
        (["no equals sign"], "expected KEY=VALUE"),
        (["VOCAB_SIZE=1024"], "vocab_size 1024 in the hyperparameters but tok_emb.weight"),
    ],
)
def test_bad_hyperparameters_are_refused(server, tmp_path: Path, sets, fragment) -> None:
    response = post_parts(server.client, [("train_gpt.py", code(tmp_path))], set=SETS + sets)
    refused(response, 422, fragment)


@pytest.mark.parametrize(
    ("artifact", "status"),
    [
        (b"PK\x03\x04 not an artifact at all", 422),
        (ARTIFACT.read_bytes()[:-200], 422),  # truncated
        (lzma.compress(b"\x00" * (DECOMPRESSED_CAP + 1)), 422),  # a bomb: as an upload's
    ],
)
def test_a_corrupt_artifact_is_refused(server, tmp_path: Path, artifact, status) -> None:
    response = post_parts(
        server.client, [("train_gpt.py", code(tmp_path))], ("final_model.ptz", artifact)
    )
    assert response.status_code == status, response.text
    assert "\n" not in response.json()["detail"]


@pytest.mark.parametrize(
    ("name", "status", "fragment"),
    [
        ("../train_gpt.py", 422, "is a path"),
        ("sub/train_gpt.py", 422, "is a path"),
        ("..\\train_gpt.py", 422, "is a path"),
        (".hidden.py", 422, "hidden"),
        ("..", 422, "hidden"),
        ("model.bin", 415, "expected .py, .log, .txt, .json, .md"),
    ],
)
def test_file_names_are_plain_names(server, tmp_path: Path, name, status, fragment) -> None:
    response = post_parts(server.client, [("train_gpt.py", code(tmp_path)), (name, b"x")])
    refused(response, status, fragment)


def test_raw_file_names_are_checked_as_sent(server, tmp_path: Path) -> None:
    """Names httpx would percent-encode, sent raw: a control character, not UTF-8."""
    for raw, fragment in ((b"train\x07gpt.py", "unprintable"), (b"\xff.py", "not UTF-8")):
        body = (
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + raw
            + b"\"\r\n\r\nx\r\n--B--\r\n"
        )  # fmt: skip
        headers = {"content-type": "multipart/form-data; boundary=B"}
        response = server.client.post("/v1/artifacts/import", content=body, headers=headers)
        refused(response, 422, fragment)


def test_form_rules(server, tmp_path: Path) -> None:
    client, script = server.client, [("train_gpt.py", code(tmp_path))]
    refused(post_parts(client, script, record="../etc"), 422, "a folder name")
    refused(post_parts(client, script, dataset="nope"), 404, "unknown dataset 'nope'")
    refused(post_parts(client, script, None), 422, "field `artifact` is missing")
    refused(post_parts(client, script + script), 422, "sent twice")
    refused(post_parts(client, script, extra="1"), 422, "unknown field `extra`")
    refused(post_parts(client, []), 422, "field `file` is missing")
    no_code = post_parts(client, [("README.md", b"# nothing\n")])
    refused(no_code, 422, "no train_gpt.py")
    json_body = client.post("/v1/artifacts/import", json={"record": "x"})
    refused(json_body, 415, "multipart/form-data")
    many = [(f"log{i}.log", b"x") for i in range(artifacts.MAX_RECORD_FILES + 1)]
    refused(post_parts(client, script + many), 413, f"more than {artifacts.MAX_RECORD_FILES + 1}")
    assert not (tmp_path / "executed").exists()
    assert list(server.settings.uploads_dir.iterdir()) == []  # every refusal cleaned up


def test_the_size_limits_are_enforced_while_streaming(server, tmp_path: Path) -> None:
    """Over the total cap (declared up front, and streamed without a length), and a code
    file over golf.record's 2,000,000-byte cap inside a body under the total."""
    client, script = server.client, [("train_gpt.py", code(tmp_path))]
    big = ("final_model.ptz", b"\x00" * (UPLOAD_CAP + 1))
    refused(post_parts(client, script, big), 413, f"limit of {UPLOAD_CAP} bytes")
    request = client.build_request(
        "POST", "/v1/artifacts/import", files=[("artifact", big)], data={"record": "r"}
    )
    body = request.read()
    headers = {"content-type": request.headers["content-type"]}
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # no Content-Length
    refused(client.post("/v1/artifacts/import", content=chunks, headers=headers), 413, "limit")
    huge_code = b"#" * 2_000_001
    refused(post_parts(client, [("train_gpt.py", huge_code)]), 413, "'train_gpt.py' exceeds")
    assert list(server.settings.uploads_dir.iterdir()) == []


# ------------------------------------------------------------------ on the real service


def test_an_imported_record_scores_as_golf_eval_does(ray_cluster, tmp_path: Path) -> None:
    """The full app under uvicorn (request limits, store, Ray workers), through the SDK
    and `golf upload-record`: the service's import of the folder, then a job on it, equal
    `golf import` then `golf eval` on the same files."""
    import httpx
    import typer
    from service_support import (
        KEYS,
        auth,
        local_reports,
        make_settings,
        serve_http,
        without_elapsed,  # fmt: skip
    )

    from clients import AsyncClient, Client, ServiceError
    from clients.cli import register

    folder = make_record(tmp_path / "rec")
    data = served_data(tmp_path / "local")
    expected = tmp_path / "cli.golf"
    decisions = cli_import(folder, expected, SETS)
    params = {"seq_len": 128, "stride": 64, "batch_windows": 8}
    local = without_elapsed(local_reports(expected, data, ["sliding"], params))
    settings = make_settings(tmp_path / "svc", data, workers=1, batches_per_shard=1)
    client_cli = typer.Typer()
    register(client_cli)
    with serve_http(settings) as url, Client(url, KEYS["alice"]) as sdk:
        doc = sdk.import_record(folder, ARTIFACT, "demo", SETS)
        assert doc["id"] == hashlib.sha256(expected.read_bytes()).hexdigest()
        report = sdk.wait(sdk.submit(doc["id"], "demo", ["sliding"], params)["id"])

        async def via_async() -> dict[str, Any]:
            async with AsyncClient(url, KEYS["carol"]) as a:
                return await a.import_record(folder, ARTIFACT, "demo", SETS)

        assert asyncio.run(via_async())["id"] == doc["id"]
        with pytest.raises(ServiceError) as refusal:
            sdk.import_record(folder, ARTIFACT, "demo", [*SETS, "NOT_A_KNOB=1"])
        assert refusal.value.status == 422 and "NOT_A_KNOB" in str(refusal.value)
        hostile = httpx.post(
            url + "/v1/artifacts/import",
            headers=auth("alice"),
            files=[("file", ("../train_gpt.py", b"x"))],
        )
        refused(hostile, 422, "is a path")  # past the request limits: an upload route
        review = httpx.post(
            url + "/v1/reviews", headers=auth("alice"), files={"file": ("r.tar", b"not a tar")}
        )
        refused(review, 422, "not a tar archive")  # the reviews' upload passes them too
        args = ["upload-record", str(folder), "--artifact", str(ARTIFACT), "--dataset", "demo"]
        args += [a for kv in SETS for a in ("--set", kv)]
        env = {"GOLF_SERVER": url, "GOLF_API_KEY": KEYS["bob"]}
        result = CliRunner().invoke(client_cli, args, env=env)
        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == doc["id"]
        assert decisions.strip() in result.stderr
        bad = CliRunner().invoke(client_cli, [*args, "--set", "NOT_A_KNOB=1"], env=env)
        assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "NOT_A_KNOB" in bad.stderr
    assert without_elapsed(report["reports"]) == local


@pytest.mark.parametrize(
    "artifact",
    [ARTIFACT, FIXTURES / "2026-03-25_ValCalib_GPTQ_XSA_BigramHash3072" / "final_model.int6.ptz"],
    ids=["int8_clean+zlib", "w,m+xz"],
)
def test_mutated_artifacts_are_refused_in_one_line(server, tmp_path: Path, artifact) -> None:
    """Bit flips, cuts and insertions anywhere in a record's artifact (zlib- or
    xz-compressed pickles): each answer is a converted artifact or one 4xx line."""
    import random

    rng = random.Random(7)
    valid = artifact.read_bytes()
    script = [("train_gpt.py", code(tmp_path))]
    statuses = []
    for _ in range(24):
        data = bytearray(valid)
        at = rng.randrange(len(data))
        op = rng.choice(("flip", "cut", "insert"))
        if op == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif op == "cut":
            del data[at : at + rng.randint(1, 64)]
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        response = post_parts(server.client, script, ("final_model.ptz", bytes(data)))
        statuses.append(response.status_code)
        assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
        if response.status_code != 200:
            assert "\n" not in response.json()["detail"]
    assert any(s != 200 for s in statuses)
    assert not (tmp_path / "executed").exists()
