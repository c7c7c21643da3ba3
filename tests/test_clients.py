"""The SDK and client CLI against the real service on the session's local Ray, under
uvicorn on a local port: real HTTP and real Server-Sent Events, one app for the module."""

import asyncio
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer
import uvicorn
from service_support import KEYS, PARAMS, make_artifact, make_settings
from typer.testing import CliRunner

from clients import AsyncClient, Client, Event, ServiceError
from clients.cli import register
from clients.sse import SSEDecoder
from golf.data import Dataset
from service.app import create_app

ALICE, BOB = KEYS["alice"], KEYS["bob"]
PROTOCOLS = ["sliding", "slot"]
BATCHES_PER_SHARD = 2
SHARDS = math.ceil(PARAMS["max_windows"] / PARAMS["batch_windows"] / BATCHES_PER_SHARD)


@pytest.fixture(scope="module")
def server(ray_cluster, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service's app under uvicorn in a thread; its URL."""
    root = tmp_path_factory.mktemp("clients")
    settings = make_settings(root, demo_data, batches_per_shard=BATCHES_PER_SHARD)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "service did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{uv.servers[0].sockets[0].getsockname()[1]}"
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def artifact(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifact(demo_data, tmp_path_factory.mktemp("clients") / "tiny.golf", seed=5)


@pytest.fixture
def client(server: str) -> Iterator[Client]:
    with Client(server, ALICE) as c:
        yield c


@pytest.fixture(scope="module")
def finished(server: str, artifact: Path) -> dict:
    """One job run to the end through `wait`, with every progress object it streamed."""
    seen: list[dict] = []
    with Client(server, ALICE) as c:
        job = c.submit(c.upload(artifact)["id"], "demo", PROTOCOLS, PARAMS)
        report = c.wait(job["id"], progress=seen.append)
    return {"job": job, "report": report, "progress": seen}


def golf(*args: str | Path, server: str, key: str | None = ALICE) -> tuple[int, str, str]:
    """Run a client command as `golf` would; (exit code, stdout, stderr)."""
    app = typer.Typer()
    register(app)
    env = {"GOLF_SERVER": server, "GOLF_API_KEY": key}
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _flags(params: dict) -> list[str]:
    return [a for k, v in params.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def test_clients_import_without_torch_or_ray() -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'ray', 'golf'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import clients, clients.sdk, clients.cli\n"
        "assert clients.Client and clients.AsyncClient and clients.cli.register\n"
    )
    subprocess.run([sys.executable, "-c", blocker], check=True)


def test_sse_decoder_follows_the_spec() -> None:
    lines = [": keepalive", "", "event: progress", 'data: {"a":', "data:  1}", "id: 7", ""]
    lines += ["data: [2]", "", "event: end", ""]
    decoder = SSEDecoder()
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert events == [Event("progress", {"a": 1}), Event("message", [2])]


def test_the_golf_command_registers_the_client_commands() -> None:
    (ep,) = [ep for ep in entry_points(group="golf.commands") if ep.name == "clients"]
    app = typer.Typer()
    ep.load()(app)
    assert {c.name for c in app.registered_commands} == {"submit", "watch", "report", "jobs"}


def test_upload_is_content_addressed(client: Client, artifact: Path) -> None:
    first, again = client.upload(artifact), client.upload(artifact)
    assert first["id"] == again["id"] and len(first["id"]) == 64
    assert first["total_bytes"] >= artifact.stat().st_size and first["verdict"] == "fits"


def test_wait_streams_shard_progress_then_the_report(finished: dict, client: Client) -> None:
    job, report, seen = finished["job"], finished["report"], finished["progress"]
    assert job["state"] == "queued" and job["id"].startswith("j_")
    assert seen and all(p["id"] == job["id"] for p in seen)
    shards = {(s["protocol"], s["shard"]) for p in seen for s in p["shards"]}
    assert {proto for proto, _ in shards} == set(PROTOCOLS)
    assert len(shards) == SHARDS * len(PROTOCOLS)
    assert any(0 < p["progress"]["windows_done"] < p["progress"]["windows_total"] for p in seen)
    assert [r["protocol"] for r in report["reports"]] == PROTOCOLS
    assert report == client.report(job["id"])
    assert client.get(job["id"])["state"] == "succeeded"


def test_windows_cover_every_scored_window(finished: dict, client: Client) -> None:
    job_id, reports = finished["job"]["id"], finished["report"]["reports"]
    every = client.windows(job_id)
    slot = client.windows(job_id, protocol="slot")
    assert len(every) == sum(r["windows"] for r in reports) == PARAMS["max_windows"] * 2
    assert [w for w in every if w["protocol"] == "slot"] == slot
    assert sum(w["tokens"] for w in slot) == reports[1]["tokens"]


def test_jobs_lists_the_callers_jobs_only(finished: dict, server: str) -> None:
    with Client(server, ALICE) as alice, Client(server, BOB) as bob:
        assert finished["job"]["id"] in [j["id"] for j in alice.jobs()]
        assert bob.jobs() == []
        with pytest.raises(ServiceError) as e:
            bob.get(finished["job"]["id"])
    assert e.value.status == 404


def test_cancel_ends_a_job(client: Client, artifact: Path) -> None:
    big = dict(PARAMS, max_windows=None, slot_steps=24)
    job = client.submit(client.upload(artifact)["id"], "demo", ["slot"], big)
    assert client.cancel(job["id"])["state"] == "cancelled"
    final = client.wait(job["id"])
    assert final["state"] == "cancelled" and final["id"] == job["id"]
    with pytest.raises(ServiceError) as again:
        client.cancel(job["id"])
    assert again.value.status == 409
    code, _, stderr = golf("watch", job["id"], server=client.url)
    assert code == 1 and stderr == f"error: job {job['id']} cancelled\n"


@pytest.mark.parametrize(
    ("key", "call", "status"),
    [
        ("wrong", lambda c: c.jobs(), 401),
        (None, lambda c: c.jobs(), 401),
        (ALICE, lambda c: c.get("j_nope"), 404),
        (ALICE, lambda c: c.report("j_nope"), 404),
        (ALICE, lambda c: c.submit("0" * 64, "demo", ["sliding"]), 404),
    ],
)
def test_errors_are_one_line(server: str, key: str | None, call, status: int) -> None:
    with Client(server, key) as c, pytest.raises(ServiceError) as e:
        call(c)
    assert e.value.status == status and e.value.detail and "\n" not in str(e.value)


def test_datasets_and_unknown_dataset(client: Client, artifact: Path, demo_data: Path) -> None:
    (demo,) = [d for d in client.datasets() if d["name"] == "demo"]
    assert demo["tokenizer_sha256"] == Dataset.open(demo_data).tokenizer_sha256
    with pytest.raises(ServiceError) as e:
        client.submit(client.upload(artifact)["id"], "nope", ["sliding"])
    assert 400 <= e.value.status < 500 and "nope" in e.value.detail


def test_bad_params_are_a_422_naming_the_field(client: Client, artifact: Path) -> None:
    artifact_id = client.upload(artifact)["id"]
    with pytest.raises(ServiceError) as e:
        client.submit(artifact_id, "demo", ["sliding"], {"seq_len": 0})
    assert e.value.status == 422 and "seq_len" in e.value.detail and "\n" not in str(e.value)


def test_async_client_round_trip(server: str, artifact: Path) -> None:
    async def round_trip() -> tuple[dict, dict, list[dict], list, list]:
        seen: list[dict] = []

        async def progress(job: dict) -> None:
            seen.append(job)

        async with AsyncClient(server, ALICE) as c:
            artifact_id = (await c.upload(artifact))["id"]
            job = await c.submit(artifact_id, "demo", ["sliding"], PARAMS)
            report = await c.wait(job["id"], progress=progress)
            events = [e async for e in c.events(job["id"])]
            again = await c.report(job["id"])
            assert job["id"] in [j["id"] for j in await c.jobs()]
            windows = await c.windows(job["id"])
            return report, again, seen, events, windows

    report, again, seen, events, windows = asyncio.run(round_trip())
    assert report == again and seen and len(windows) == report["reports"][0]["windows"]
    assert events[-1].event == "report" and events[-1].data == report


def test_cli_submit_wait_prints_the_report_table(server: str, artifact: Path) -> None:
    protocol_args = [a for p in PROTOCOLS for a in ("--protocol", p)]
    args = ["submit", artifact, "--dataset", "demo", *protocol_args, *_flags(PARAMS), "--wait"]
    code, stdout, stderr = golf(*args, server=server)
    assert code == 0, stderr
    assert "uploaded tiny.golf" in stderr and f"slot #{SHARDS - 1}" in stderr
    assert "val_bpb" in stdout and "sliding" in stdout and "non_causal_protocol" in stdout


def test_cli_report_json_jobs_and_watch(finished: dict, server: str, client: Client) -> None:
    job_id = finished["job"]["id"]
    code, stdout, _ = golf("report", job_id, "--json", server=server)
    assert code == 0 and json.loads(stdout) == client.report(job_id)
    code, stdout, _ = golf("jobs", server=server)
    assert code == 0 and job_id in stdout
    code, stdout, _ = golf("watch", job_id, server=server)
    assert code == 0 and "val_bpb" in stdout


def test_cli_submit_without_wait_prints_the_job_id(server: str, client: Client) -> None:
    artifact_id = client.jobs()[0]["artifact"]
    args = ["submit", artifact_id, "--dataset", "demo", "--protocol", "sliding", *_flags(PARAMS)]
    code, stdout, _ = golf(*args, server=server)
    assert code == 0 and client.get(stdout.strip())["artifact"] == artifact_id
    assert client.wait(stdout.strip())["reports"][0]["protocol"] == "sliding"


@pytest.mark.parametrize(
    ("args", "key", "url", "words"),
    [
        (["jobs"], ALICE, "http://127.0.0.1:9", "cannot reach server at http://127.0.0.1:9"),
        (["jobs"], "wrong", None, "HTTP 401"),
        (["report", "j_nope"], ALICE, None, "HTTP 404"),
        (["submit", "no.golf", "--dataset", "demo", "--protocol", "x"], ALICE, None, "no.golf"),
    ],
)
def test_cli_errors_are_one_line_exit_2(
    server: str, args: list[str], key: str, url: str | None, words: str
) -> None:
    code, stdout, stderr = golf(*args, key=key, server=url or server)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and words in stderr
