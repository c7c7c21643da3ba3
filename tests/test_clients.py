"""The SDK and client CLI against the real service on the session's local Ray, under
uvicorn on a local port: real HTTP and real Server-Sent Events, one app for the module."""

import asyncio
import io
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import typer
from rich.console import Console
from service_support import KEYS, PARAMS, make_artifact, make_settings, serve_http
from typer.testing import CliRunner

from clients import AsyncClient, Client, Event, ServiceError
from clients.cli import register
from clients.sse import SSEDecoder
from clients.views import LiveJob, shard_strip
from golf.data.shards import Dataset

ALICE, BOB = KEYS["alice"], KEYS["bob"]
PROTOCOLS = ["sliding", "slot"]
BATCHES_PER_SHARD = 2
SHARDS = math.ceil(PARAMS["max_windows"] / PARAMS["batch_windows"] / BATCHES_PER_SHARD)


@pytest.fixture(scope="module")
def server(ray_cluster, demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service's app under uvicorn in a thread; its URL."""
    root = tmp_path_factory.mktemp("clients")
    with serve_http(make_settings(root, demo_data, batches_per_shard=BATCHES_PER_SHARD)) as url:
        yield url


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
    """Of golf, the client CLI may use only the torch-free half, golf.spec."""
    blocker = (
        "import sys\n"
        "ALLOWED = ('golf', 'golf.spec')\n"
        "HEAVY = ('torch', 'ray', 'numpy', 'sentencepiece', 'safetensors', 'fastapi')\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.split('.')[0]\n"
        "        inside = name in ALLOWED or name.startswith('golf.spec.')\n"
        "        if top in HEAVY or (top == 'golf' and not inside):\n"
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
    names = {c.name for c in app.registered_commands}
    assert {"submit", "watch", "report", "compare", "jobs", "leaderboard"} <= names


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


def test_cli_submit_wait_shows_the_live_view_then_the_report(
    server: str, artifact: Path, client: Client
) -> None:
    protocol_args = [a for p in PROTOCOLS for a in ("--protocol", p)]
    args = ["submit", artifact, "--dataset", "demo", *protocol_args, *_flags(PARAMS), "--wait"]
    args.append("--rerun")  # a new job to follow, not the identical finished one
    code, stdout, stderr = golf(*args, "--format", "json", server=server)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report == client.report(report["job"])
    # Off a terminal the live view prints its last frame: the whole job, then a line
    # per protocol with the reported val_bpb and one done cell per shard.
    lines = stderr.splitlines()
    assert lines[0].startswith("uploaded tiny.golf: ")
    # the scheduler may start it before the POST answers: queued or running
    assert lines[1] in (f"job {report['job']} queued", f"job {report['job']} running")
    total = PARAMS["max_windows"] * len(PROTOCOLS)
    head = lines[2].split()
    assert head[:2] == [report["job"], "succeeded"] and "100%" in head
    assert f"{total}/{total}" in head and "windows/s" in head and "eta" in head
    rows = [line.split() for line in lines[3:]]
    assert rows == [
        [
            r["protocol"],
            "val_bpb",
            f"{r['val_bpb']:.4f}",
            "▮" * SHARDS,
            f"{SHARDS}/{SHARDS}",
            "done",
        ]
        for r in report["reports"]
    ]
    table = golf("report", report["job"], server=server)[1]
    assert "val_bpb" in table and "non_causal_protocol" in table and "dataset demo" in table


def test_live_view_rate_and_eta() -> None:
    """windows/s from the progress seen; the server's ETA counted down between events."""
    now = [100.0]
    view = LiveJob("j_x", Console(file=io.StringIO()), now=lambda: now[0])
    job = {"state": "running", "protocols": ["slot"], "eta_s": None, "shards": []}
    view.update(job | {"progress": {"windows_done": 10, "windows_total": 100}})
    assert view.rate() is None and view.eta(10, 100) is None
    now[0] = 104.0
    view.update(job | {"progress": {"windows_done": 30, "windows_total": 100}})
    assert view.rate() == 5.0 and view.eta(30, 100) == 14.0
    view.update(job | {"progress": {"windows_done": 30, "windows_total": 100}, "eta_s": 9.0})
    now[0] = 107.0
    assert view.eta(30, 100) == 6.0
    now[0] = 108.0  # a new server estimate: the shown ETA moves halfway to it, no jump
    view.update(job | {"progress": {"windows_done": 30, "windows_total": 100}, "eta_s": 25.0})
    assert view.eta(30, 100) == 5.0 + 0.5 * (25.0 - 5.0)
    view.update(job | {"state": "succeeded", "progress": {"windows_done": 100}})
    assert view.eta(100, 100) is None
    # No window landed in the recent samples: no rate, not "0.0 windows/s".
    still = LiveJob("j_z", Console(file=io.StringIO()), now=lambda: now[0])
    still.update(job | {"progress": {"windows_done": 0, "windows_total": 100}})
    now[0] += 5.0
    still.update(job | {"progress": {"windows_done": 0, "windows_total": 100}})
    assert still.rate() is None
    # Off a terminal, a plain job line every 30 s of updates.
    log = io.StringIO()
    view = LiveJob("j_y", Console(file=log, width=120), now=lambda: now[0])
    view.update(job | {"progress": {"windows_done": 10, "windows_total": 100}})
    now[0] += 31.0
    assert log.getvalue() == ""
    view.update(job | {"progress": {"windows_done": 72, "windows_total": 100}, "eta_s": 30.0})
    (line,) = log.getvalue().splitlines()
    words = line.split()
    assert words[:2] == ["j_y", "running"] and words[2].startswith("━━━")
    assert words[3:] == ["72%", "72/100", "windows", "2.0", "windows/s", "eta", "0:00:30"]


def test_shard_strip_is_one_cell_per_shard_up_to_a_line() -> None:
    strip, per = shard_strip(["done", "running", "queued", "failed", "cancelled"])
    assert (strip.plain, per) == ("▮▮▯▮▮", 1)
    assert [span.style for span in strip.spans] == ["green", "yellow", "grey50", "red", "magenta"]
    states = ["done"] * 100 + ["running"] + ["queued"] * 99  # 200 shards, 4 a cell
    strip, per = shard_strip(states, cells=50)
    assert per == 4 and strip.plain == "▮" * 26 + "▯" * 24
    assert [span.style for span in strip.spans][24:27] == ["green", "yellow", "grey50"]


def _detach_on_update(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """Ctrl-C as the `at`-th job object reaches the live view (1: the first GET's)."""
    update, calls = LiveJob.update, []

    def interrupted(self: LiveJob, job: dict) -> None:
        calls.append(job)
        if len(calls) == at:
            raise KeyboardInterrupt
        update(self, job)

    monkeypatch.setattr(LiveJob, "update", interrupted)


def test_ctrl_c_detaches_submit_wait_and_the_job_completes(
    server: str, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _detach_on_update(monkeypatch, at=2)  # the first progress event of the stream
    artifact_id = client.jobs()[0]["artifact"]
    args = [
        "submit",
        artifact_id,
        "--dataset",
        "demo",
        "--protocol",
        "sliding",
        *_flags(PARAMS),
        "--rerun",
    ]
    code, stdout, stderr = golf(*args, "--wait", server=server)
    job_id = stderr.splitlines()[0].split()[1]
    assert code == 0 and stdout == ""
    assert stderr.splitlines()[-1] == f"detached; the job keeps running: golf watch {job_id}"
    assert client.wait(job_id)["reports"][0]["windows"] == PARAMS["max_windows"]


def test_ctrl_c_detaches_watch_and_the_job_keeps_running(
    server: str, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = dict(PARAMS, max_windows=None, slot_steps=24)
    job = client.submit(client.jobs()[0]["artifact"], "demo", ["slot"], big)
    try:
        _detach_on_update(monkeypatch, at=1)
        code, stdout, stderr = golf("watch", job["id"], server=server)
        assert code == 0 and stdout == ""
        assert stderr.splitlines()[-1] == f"detached; the job keeps running: golf watch {job['id']}"
        assert client.get(job["id"])["state"] in ("queued", "running")
        code, _, stderr = golf("report", job["id"], "-f", "md", server=server)
        assert code == 2 and stderr.count("\n") == 1
        assert (
            stderr.endswith(f"; follow it with golf watch {job['id']}\n") and "HTTP 409" in stderr
        )
    finally:
        client.cancel(job["id"])


def _md_rows(text: str) -> list[list[str]]:
    """The cells of a markdown table's rows (header first, rule dropped)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()]
    return [r for i, r in enumerate(rows) if i != 1]


def test_cli_report_md_is_the_json_report(finished: dict, server: str, client: Client) -> None:
    job_id = finished["job"]["id"]
    code, stdout, stderr = golf("report", job_id, "--format", "md", server=server)
    assert code == 0, stderr
    report = client.report(job_id)
    # a partial run: a loud note first, then the table, with no Δ
    note, _, stdout = stdout.partition("\n\n")
    total = report["reports"][0]["windows_total"]
    assert note == (
        f"> **PARTIAL RUN**: scored only the first windows (48 of {total:,}); these are not "
        "val_bpb of the whole validation set\n> **no Δ**: a partial run (see tokens)"
    )
    table, line = stdout.rpartition("\n\n")[0], stdout.splitlines()[-2]
    header, *rows = _md_rows(table)
    assert header == [
        "protocol", "val_bpb", "95% CI", "Δ bpb", "val_loss", "tokens", "windows", "wall s",
        "flags",
    ]  # fmt: skip
    assert stdout.splitlines()[1] == "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    assert len(rows) == len(report["reports"]) == 2
    for row, r in zip(rows, report["reports"], strict=True):
        assert row[0] == r["protocol"]
        assert abs(float(row[1]) - r["val_bpb"]) <= 5e-7
        assert row[2] == f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]"
        assert row[3] == "—"
        assert abs(float(row[4]) - r["val_loss"]) <= 5e-7
        assert int(row[5].replace(",", "")) == r["tokens"]
        assert int(row[6]) == r["windows"] == PARAMS["max_windows"]
        assert abs(float(row[7]) - r["wall_s"]) <= 0.005 and r["wall_s"] > 0
    assert [row[8] for row in rows] == ["", "`non_causal_protocol`"]
    art = report["artifact"]
    assert line == (
        f"job `{job_id}` · artifact `{art['id'][:12]}` ({art['total_bytes']:,} bytes, fits; "
        f"code size not declared) · dataset `demo` "
        f"(`{report['reports'][0]['dataset_sha256'][:12]}`) · seq_len 64, "
        f"stride sliding 32 / slot 32, slot steps 8, max_windows 48 · "
        f"eval on {report['reports'][0]['engine']['device_name']} · "
        f"digest `{report['digest'][:16]}`  "
    )
    assert stdout.splitlines()[-1].startswith("95% CI: within-run")
    assert (
        golf("report", job_id, "-f", "json", server=server)[1]
        == golf("report", job_id, "--json", server=server)[1]
    )


@pytest.fixture(scope="module")
def finished_b(finished: dict, server: str) -> dict:
    """The artifact of `finished` again, with 4 SLOT steps instead of 8 and `plain` too."""
    with Client(server, ALICE) as c:
        params = dict(PARAMS, slot_steps=4)
        job = c.submit(finished["job"]["artifact"], "demo", [*PROTOCOLS, "plain"], params)
        return c.wait(job["id"])


def test_cli_compare_two_jobs(finished: dict, finished_b: dict, server: str) -> None:
    a, b = finished["report"], finished_b
    code, stdout, stderr = golf("compare", a["job"], b["job"], "-f", "json", server=server)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["differs"] == {
        "B": ["slot_steps 8 → 4", "protocols sliding, slot → sliding, slot, plain"]
    }
    assert [s["label"] for s in doc["sides"]] == [a["job"], b["job"]]
    bpb_a = {r["protocol"]: r["val_bpb"] for r in a["reports"]}
    bpb_b = {r["protocol"]: r["val_bpb"] for r in b["reports"]}
    assert [(r["protocol"], r["val_bpb_a"], r["val_bpb_b"]) for r in doc["rows"]] == [
        (p, bpb_a.get(p), bpb_b[p]) for p in ("sliding", "slot", "plain")
    ]
    sliding, slot, plain = doc["rows"]
    # SLOT's steps do not touch the sliding protocol: the same windows, Δ exactly 0.
    assert sliding["delta_bpb"] == 0.0 and sliding["ci95"] == [0.0, 0.0]
    assert sliding["paired"] and sliding["significant"] is False
    assert sliding["n_windows"] == PARAMS["max_windows"]
    assert slot["delta_bpb"] == bpb_b["slot"] - bpb_a["slot"] != 0.0
    lo, hi = slot["ci95"]
    assert lo <= slot["delta_bpb"] <= hi and slot["paired"] and slot["resamples"] == 2000
    assert slot["significant"] == (lo > 0 or hi < 0)
    assert plain["delta_bpb"] is None and plain["ci95"] is None
    assert plain["unpaired_reason"] == "A did not run plain"
    code, stdout, _ = golf("compare", a["job"], b["job"], server=server)
    assert code == 0 and "same artifact; differs: slot_steps 8 → 4" in stdout
    assert f"A = {a['job']}: artifact {a['artifact']['id'][:12]}" in stdout
    assert "[+0.000000, +0.000000]" in stdout and "paired bootstrap" in stdout


def test_cli_compare_report_files(
    finished: dict, finished_b: dict, server: str, tmp_path: Path
) -> None:
    a, b = finished["report"], finished_b
    file_a, file_b = tmp_path / "a.json", tmp_path / "b.json"
    file_a.write_text(golf("report", a["job"], "-f", "json", server=server)[1])
    file_b.write_text(golf("report", b["job"], "-f", "json", server=server)[1])
    # Two files need no server at all; they hold no windows, so there is no CI.
    code, stdout, stderr = golf("compare", file_a, file_b, "-f", "md", server="http://127.0.0.1:9")
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith(f"A = {a['job']} (a.json): artifact {a['artifact']['id'][:12]}")
    assert lines[2] == "same artifact; differs: slot_steps 8 → 4; " + (
        "protocols sliding, slot → sliding, slot, plain  "
    )
    header, *rows = _md_rows("\n".join(lines[4:12]))
    assert header == ["protocol", "side", "val_bpb", "Δ vs A", "95% CI", "significant"]
    by_b = {r["protocol"]: r["val_bpb"] for r in b["reports"]}
    ra, rb = a["reports"]
    assert rows[:4] == [
        row
        for r in (ra, rb)
        for row in (
            [r["protocol"], "A", f"{r['val_bpb']:.6f}", "", "", ""],
            [r["protocol"], "B", f"{by_b[r['protocol']]:.6f}",
             f"{by_b[r['protocol']] - r['val_bpb']:+.6f}", "—", "unpaired"],
        )
    ]  # fmt: skip
    assert rows[4:] == [["plain", "A", "—", "", "", ""], ["plain", "B", f"{by_b['plain']:.6f}",
                        "—", "—", "—"]]  # fmt: skip
    assert "> sliding B: unpaired, no CI: A has no per-window records" in stdout
    # A file on one side, a job id on the other: the same Δ.
    mixed = golf("compare", file_a, b["job"], "-f", "json", server=server)[1]
    both = golf("compare", a["job"], b["job"], "-f", "json", server=server)[1]
    assert [r["delta_bpb"] for r in json.loads(mixed)["rows"]] == [
        r["delta_bpb"] for r in json.loads(both)["rows"]
    ]


def test_cli_compare_groups_of_service_jobs_and_saved_sides(
    finished: dict, finished_b: dict, server: str, client: Client
) -> None:
    """A service group (jobs submitted with --group) against an explicit one: mean ± std,
    Welch's t and the pooled bootstrap, paired when both groups have as many seeds."""
    artifact_id = finished["job"]["artifact"]
    args = ["submit", artifact_id, "--dataset", "demo", "--protocol", "sliding", *_flags(PARAMS)]
    ids = []
    for _ in range(2):
        code, stdout, stderr = golf(*args, "--group", "seeds.v2", server=server)
        assert code == 0, stderr
        ids.append(stdout.strip())
    for job_id in ids:
        client.wait(job_id)
    assert client.get(ids[0])["group"] == "seeds.v2"
    base = f"base={finished['job']['id']},{finished_b['job']}"
    code, stdout, stderr = golf(
        "compare", "--group", base, "--group", "seeds.v2", "-f", "json", server=server
    )
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert [g["name"] for g in doc["groups"]] == ["base", "seeds.v2"]
    assert doc["groups"][1]["members"] == ids
    sliding = doc["groups"][0]["protocols"]["sliding"]
    # The same artifact and sliding params each time: no spread at all.
    assert sliding["seeds"] == 2 and sliding["std"] == 0.0
    (test,) = [t for t in doc["tests"] if t["protocol"] == "sliding"]
    assert test["delta_bpb"] == 0.0 and test["welch"] is None
    assert test["bootstrap"]["paired"] and test["bootstrap"]["ci95"] == [0.0, 0.0]
    code, stdout, _ = golf("compare", "--group", base, "--group", "seeds.v2", server=server)
    assert code == 0 and "± 0.000000" in stdout and "seeds.v2 − base" in stdout
    code, stdout, stderr = golf("compare", "--group", "nope", "--group", base, server=server)
    assert code == 2 and "no succeeded jobs in group 'nope'" in stderr
    code, stdout, _ = golf("jobs", server=server)
    assert "seeds.v2" in stdout and "val_bpb" in stdout

    # The group as a submission.json: the seeds' mean, std and per-seed results; the
    # seeds are partial runs, so only with --allow-partial, and marked.
    args = ["report", "--group", "seeds.v2", "-f", "submission"]
    code, _, stderr = golf(*args, server=server)
    assert code == 2 and "is a partial run" in stderr
    code, stdout, stderr = golf(*args, "--allow-partial", server=server)
    assert code == 0, stderr
    doc = json.loads(stdout)
    value = client.report(ids[0])["reports"][0]["val_bpb"]
    assert doc["val_bpb"] == value and doc["val_bpb_std"] == 0.0 and doc["partial"] is True
    assert doc["seeds"] == ids  # random artifacts declare no seed: named by job
    assert [r["val_bpb"] for r in doc["seed_results"].values()] == [value, value]
    assert doc["golf_eval"]["group"] == "seeds.v2" and doc["golf_eval"]["jobs"] == ids


def test_cli_leaderboard_and_submission(finished: dict, server: str, client: Client) -> None:
    """The module's jobs are partial (max_windows 48 of the demo val): off the board and
    refused as a submission, unless asked for, and then marked partial."""
    code, stdout, stderr = golf("leaderboard", "-f", "json", server=server)  # one dataset
    assert code == 0, stderr
    assert json.loads(stdout) == {"dataset": "demo", "board": "mine", "rows": []}
    args = ["leaderboard", "--dataset", "demo", "--include-partial"]
    code, stdout, stderr = golf(*args, "-f", "json", server=server)
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc == client.leaderboard("demo", include_partial=True) | {"rows": doc["rows"]}
    assert doc["rows"] and {r["protocol"] for r in doc["rows"]} >= {"sliding", "slot"}
    assert all(r["partial"] and r["seeds"] == 1 and r["owner"] == "alice" for r in doc["rows"])
    code, stdout, _ = golf(*args, "-f", "md", server=server)
    assert code == 0 and stdout.startswith("**leaderboard**: dataset `demo`")
    assert "PARTIAL" in stdout and "| — | sliding |" in stdout  # marked, unranked
    code, stdout, _ = golf(*args, "--sort", "bytes", server=server)
    assert code == 0 and "leaderboard: demo" in stdout
    code, _, stderr = golf("leaderboard", "--dataset", "nope", server=server)
    assert code == 2 and "unknown dataset 'nope'; the server serves: demo" in stderr

    job_id = finished["job"]["id"]
    code, stdout, stderr = golf("report", job_id, "-f", "submission", server=server)
    assert code == 2 and stdout == ""
    assert f"job {job_id} is a partial run (sliding scored 48 of " in stderr
    assert "--allow-partial" in stderr
    code, stdout, stderr = golf(
        "report", job_id, "-f", "submission", "--allow-partial", server=server
    )
    assert code == 0, stderr
    doc, report = json.loads(stdout), finished["report"]
    sliding, slot = report["reports"]
    assert doc["partial"] is True and doc["windows"] == 48
    assert doc["windows_total"] == sliding["windows_total"] > 48
    assert doc["val_bpb"] == sliding["val_bpb"] and doc["val_loss"] == sliding["val_loss"]
    assert doc["val_bpb_by_protocol"] == {"sliding": sliding["val_bpb"], "slot": slot["val_bpb"]}
    assert doc["bytes_total"] == report["artifact"]["total_bytes"]
    assert "bytes_code" not in doc and "code size not declared" in stderr  # a random artifact
    assert doc["golf_eval"] == {
        "protocol": "sliding",
        "environment": report["environment"],
        "digest": report["digest"],
        "job": job_id,
        "artifact": report["artifact"]["id"],
        "dataset": {"name": "demo", "sha256": sliding["dataset_sha256"]},
        "ci95_within_run": sliding["ci95"],
        "eval_time_s": sliding["wall_s"],
    }
    args = ["report", job_id, "-f", "submission", "--protocol", "slot", "--allow-partial"]
    code, stdout, _ = golf(*args, server=server)
    assert code == 0 and json.loads(stdout)["val_bpb"] == slot["val_bpb"]


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


def test_cli_submit_passes_plan_and_reference_through(server: str, client: Client) -> None:
    artifact_id = client.jobs()[0]["artifact"]
    args = ["submit", artifact_id, "--dataset", "demo", "--protocol", "sliding", *_flags(PARAMS)]
    code, stdout, stderr = golf(*args, "--plan", "legacy", "--reference", server=server)
    assert code == 0, stderr
    report = client.wait(stdout.strip())
    (sliding,) = report["reports"]
    assert sliding["params"]["plan"] == "legacy" and sliding["params"]["reference"] is True
    assert sliding["params"]["seq_len"] == PARAMS["seq_len"]


UNKNOWN = "unknown job j_nope (HTTP 404); list yours with golf jobs"


@pytest.mark.parametrize(
    ("args", "key", "url", "words"),
    [
        (["jobs"], ALICE, "http://127.0.0.1:9", "cannot reach server at http://127.0.0.1:9"),
        (["jobs"], "wrong", None, "HTTP 401"),
        (["report", "j_nope"], ALICE, None, UNKNOWN),
        (["report", "j_nope", "-f", "md"], ALICE, None, UNKNOWN),
        (["watch", "j_nope"], ALICE, None, UNKNOWN),
        (["compare", "j_nope", "j_nope"], ALICE, None, UNKNOWN),
        (["compare", "no.json", "j_nope"], ALICE, None, "no.json: no such file or folder, nor"),
        (["compare", "j_nope"], ALICE, None, "compare needs two sides or more"),
        (["compare", "j_a", "--group", "g=j_b"], ALICE, None, "pass sides or --group, not both"),
        (
            ["submit", "x.golf", "--dataset", "demo", "--protocol", "sliding", "--group", "a b"],
            ALICE,
            None,
            "--group 'a b'",
        ),
        (["report", "j_nope", "-f", "submission"], ALICE, None, UNKNOWN),
        (["compare", __file__, "j_x"], ALICE, None, f"{__file__}: not a JSON report"),
        (["report", "j_nope", "--format", "xml"], ALICE, None, "unknown --format xml"),
        (["report", "j_nope", "--json", "-f", "md"], ALICE, None, "--json and --format md"),
        (["submit", "no.golf", "--dataset", "demo", "--protocol", "plain"], ALICE, None, "no.golf"),
        (
            ["submit", "no.golf", "--dataset", "demo", "--protocol", "x"],
            ALICE,
            None,
            "unknown protocol 'x'; expected one of: plain, sliding, slot, slot-causal",
        ),  # before the file is even looked at
    ],
)
def test_cli_errors_are_one_line_exit_2(
    server: str, args: list[str], key: str, url: str | None, words: str
) -> None:
    code, stdout, stderr = golf(*args, key=key, server=url or server)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and words in stderr


def test_live_view_fits_80_columns() -> None:
    """At 80 columns every line fits and nothing essential is cut with `…`."""
    protocols = ["plain", "sliding", "slot", "slot-causal"]
    states = ["done", "running", "queued"]
    shards = [
        {"protocol": p, "shard": i, "state": states[i % 3], "windows_done": 1, "windows_total": 8}
        for p in protocols
        for i in range(70)
    ]
    job = {
        "id": "j_772ffc40a8912345",
        "state": "running",
        "protocols": protocols,
        "progress": {"windows_done": 12_345, "windows_total": 123_456},
        "running": {"slot-causal": {"val_bpb": 2.2345}},
        "shards": shards,
        "eta_s": 1234.0,
    }
    for width in (80, 100, 160):
        buffer = io.StringIO()
        console = Console(width=width, file=buffer, color_system=None)
        view = LiveJob(job["id"], console)
        view.update(job)
        console.print(view.render())
        text = buffer.getvalue()
        lines = text.splitlines()
        assert max(map(len, lines)) <= width and "…" not in text, text
        assert "j_772ffc40a8912345 running" in text and "12,345/123,456 windows" in text
        assert "eta 0:20:34" in text and "val_bpb 2.2345" in text
        assert [line.split()[0] for line in lines[-4:]] == protocols


def _report(protocols: list[tuple[str, int, int, int | None]]) -> dict:
    """A report of (protocol, tokens, stride, max_windows) rows."""
    return {
        "job": "j_x",
        "artifact": {"id": "a" * 64, "total_bytes": 1, "verdict": "fits", "flags": []},
        "reports": [
            {
                "protocol": name,
                "val_bpb": 2.0 + i / 10,
                "val_loss": 3.0,
                "tokens": tokens,
                "windows": 40,
                "elapsed_s": 1.0,
                "dataset_sha256": "d" * 64,
                "params": {"seq_len": 256, "stride": stride, "max_windows": cap, "slot_steps": 8},
            }
            for i, (name, tokens, stride, cap) in enumerate(protocols)
        ],
        "flags": [],
    }


def test_views_mark_a_partial_run_and_give_no_delta_across_different_targets() -> None:
    from clients.views import report_markdown, report_rows, report_table

    full = _report([("plain", 1000, 256, None), ("sliding", 1000, 128, None)])
    assert [row[3] for row in report_rows(full)] == ["+0.000000", "+0.100000"]
    assert not report_markdown(full).startswith(">")
    partial = _report([("plain", 10240, 256, 40), ("sliding", 5248, 128, 40)])
    assert [row[3] for row in report_rows(partial)] == ["—", "—"]
    md = report_markdown(partial)
    assert md.startswith("> **PARTIAL RUN**: scored only the first windows (max_windows 40)")
    assert "> **no Δ**: a partial run" in md
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(report_table(partial))
    assert "PARTIAL RUN: scored only the first windows" in buffer.getvalue()
    # a partial run has no Δ even where both protocols scored the same first windows
    same = _report([("sliding", 5248, 128, 40), ("slot", 5248, 128, 40)])
    assert [row[3] for row in report_rows(same)] == ["—", "—"]


def test_partial_is_decided_from_the_counts() -> None:
    """A max_windows that covers every window of the whole val is no partial run; one
    that cuts it is, and says how much it scored."""
    from golf.spec.tables import is_partial, report_rows, scored_alike

    whole = _report([("sliding", 5248, 128, 999_999_999), ("slot", 5248, 128, 999_999_999)])
    for r in whole["reports"]:
        r |= {"windows_total": 40, "partial": False}
    assert not any(is_partial(r) for r in whole["reports"])
    assert scored_alike(whole) == (True, [])
    assert [row[3] for row in report_rows(whole)] == ["+0.000000", "+0.100000"]
    cut = _report([("sliding", 5248, 128, 40)])
    cut["reports"][0] |= {"windows_total": 858, "partial": True}
    comparable, notes = scored_alike(cut)
    assert notes == [
        "PARTIAL RUN: scored only the first windows (40 of 858); these are not val_bpb of "
        "the whole validation set"
    ]


def test_cli_datasets_cancel_and_report_advice(server: str, client: Client, artifact: Path) -> None:
    code, stdout, _ = golf("datasets", "--json", server=server)
    assert code == 0 and json.loads(stdout) == {"datasets": client.datasets()}
    code, stdout, _ = golf("datasets", server=server)
    assert code == 0 and "demo" in stdout and "val tokens" in stdout
    big = dict(PARAMS, max_windows=None, slot_steps=24)
    job = client.submit(client.upload(artifact)["id"], "demo", ["slot"], big)
    code, stdout, stderr = golf("cancel", job["id"], server=server)
    assert code == 0 and stdout == f"{job['id']} cancelled\n", stderr
    code, _, stderr = golf("cancel", job["id"], server=server)
    assert code == 2 and "only active jobs can be cancelled" in stderr
    code, _, stderr = golf("cancel", "j_nope", server=server)
    assert code == 2 and "unknown job j_nope" in stderr
    code, _, stderr = golf("report", job["id"], server=server)
    assert code == 2 and stderr.count("\n") == 1
    assert "was cancelled" in stderr and "golf watch" not in stderr and "golf submit" in stderr


def test_cli_submit_reuses_an_identical_finished_job_unless_rerun(
    finished: dict, server: str, client: Client
) -> None:
    """Evaluation is exact: the same inputs get the finished job's report, not a new run."""
    job = finished["job"]
    args = ["submit", job["artifact"], "--dataset", "demo", *_flags(PARAMS)]
    args += [a for p in PROTOCOLS for a in ("--protocol", p)]
    code, stdout, stderr = golf(*args, server=server)
    reused = client.get(stdout.strip())  # the newest identical one of earlier tests'
    assert (
        code == 0 and reused["state"] == "succeeded" and reused["created_at"] >= job["created_at"]
    )
    assert {k: reused[k] for k in ("artifact", "protocols", "params", "group")} == {
        k: client.get(job["id"])[k] for k in ("artifact", "protocols", "params", "group")
    }
    assert f"job {reused['id']} already scored these inputs" in stderr and "--rerun" in stderr
    code, stdout, stderr = golf(*args, "--slot-steps", "2", server=server)  # other params
    assert code == 0 and stdout.strip() != job["id"] and "already" not in stderr
    code, stdout, _ = golf(*args, "--rerun", server=server)
    assert code == 0 and stdout.strip() != job["id"]
    for new in (stdout.strip(),):
        assert (
            client.wait(new)["reports"][0]["val_bpb"] == finished["report"]["reports"][0]["val_bpb"]
        )


def test_cli_submit_checks_the_dataset_first_and_names_a_bad_file(
    server: str, client: Client, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am a text file\n")
    submit = ["submit", "--protocol", "sliding", *_flags({"max_windows": 8})]
    # The dataset is checked before anything is uploaded: the text file is not read.
    code, stdout, stderr = golf(*submit, text, "--dataset", "nope", server=server)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert "unknown dataset 'nope'" in stderr and "demo" in stderr and "golf datasets" in stderr
    code, _, stderr = golf(*submit, text, "--dataset", "demo", server=server)
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith("error: notes.txt: not a .golf artifact (not an xz stream")
    torch_zip = tmp_path / "final_model.int6.ptz"
    torch_zip.write_bytes(b"PK\x03\x04" + bytes(64))
    code, _, stderr = golf(*submit, torch_zip, "--dataset", "demo", server=server)
    assert code == 2 and "final_model.int6.ptz: " in stderr and "golf import-pg" in stderr


def _seed_files(tmp_path: Path, name: str, losses: list[float]) -> str:
    """NAME=file,file,… of report files, one per seed, with these val_loss values."""
    files = []
    for i, loss in enumerate(losses):
        doc = _report([("sliding", 1000, 128, None)])
        doc["job"] = f"j_{name}{i}"
        doc["reports"][0] |= {"val_loss": loss, "val_bpb": loss / math.log(2) / 3.5}
        doc["reports"][0] |= {"windows_total": 40, "partial": False}
        path = tmp_path / f"{name}{i}.json"
        path.write_text(json.dumps(doc))
        files.append(str(path))
    return f"{name}={','.join(files)}"


@pytest.mark.parametrize(("gain", "verdict"), [(0.009, "RECORD"), (0.004, "not a record")])
def test_cli_compare_rule_record_on_both_sides_of_the_margin(
    tmp_path: Path, gain: float, verdict: str
) -> None:
    """`--rule record` (0.005 nats, p < 0.01 by default) over constructed seed groups;
    the window bootstrap is labelled within-run and never gives the verdict."""
    base = [3.0 - 0.0005, 3.0, 3.0 + 0.0005]
    sota = _seed_files(tmp_path, "sota", base)
    new = _seed_files(tmp_path, "new", [v - gain for v in base])
    args = ["compare", "--group", sota, "--group", new, "--rule", "record"]
    code, stdout, stderr = golf(*args, "-f", "json", server="http://127.0.0.1:9")
    assert code == 0, stderr
    (row,) = json.loads(stdout)["record"]
    assert row["group"] == "new" and row["vs"] == "sota" and row["seeds"] == [3, 3]
    assert row["improvement_nats"] == pytest.approx(gain, abs=1e-12)
    assert row["margin_nats"] == 0.005 and row["alpha"] == 0.01
    assert (row["p"] < 0.01) == (verdict == "RECORD")
    code, stdout, _ = golf(*args, "-f", "md", server="http://127.0.0.1:9")
    (line,) = [r for r in stdout.splitlines() if r.startswith("| sliding | new vs sota |")]
    assert line.endswith(f"| {verdict} |")
    assert "within-run" in stdout and "never a record verdict" in stdout
    code, _, stderr = golf("compare", "--group", sota, "--rule", "record", server="x")
    assert code == 2 and "--rule record compares seed groups" in stderr


def test_local_eval_json_has_the_service_reports_digest_and_numbers(
    finished: dict, artifact: Path, demo_data: Path
) -> None:
    """`golf eval --json` on the job's inputs: the same digest, environment keys and
    numbers (CI, partial counts included) as the service's report."""
    from golf.cli import app as golf_app

    flags = [a for p in PROTOCOLS for a in ("--protocol", p)] + _flags(PARAMS)
    args = ["eval", str(artifact), "--data", str(demo_data), *flags, "--json"]
    result = CliRunner().invoke(golf_app, args)
    assert result.exit_code == 0, result.stderr
    local, service = json.loads(result.stdout), finished["report"]
    assert local["digest"] == service["digest"]
    assert set(local["environment"]) == set(service["environment"])
    timing = ("elapsed_s", "wall_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in local["reports"]] == [
        {k: v for k, v in r.items() if k not in timing} for r in service["reports"]
    ]


def test_jobs_name_the_protocol_of_the_lowest_val_bpb_and_mark_running_ones() -> None:
    from clients.cli import best_bpb

    running = {"sliding": {"val_bpb": 2.5}, "slot": {"val_bpb": 2.25}, "plain": {}}
    assert best_bpb({"state": "succeeded", "running": running}) == "2.2500 slot"
    assert best_bpb({"state": "running", "running": running}) == "2.2500 slot (running)"
    assert best_bpb({"state": "cancelled", "running": running}) == "2.2500 slot (stopped)"
    assert best_bpb({"state": "queued", "running": {}}) == "—"


def test_compare_warns_of_a_partial_side_and_names_saved_folders(tmp_path: Path) -> None:
    """Two `golf eval --save` folders both hold report.json: each side is named by its
    folder; a partial side is a PARTIAL RUN note, not a silent number."""
    for name, cap in (("run1", None), ("run2", 40)):
        (tmp_path / name).mkdir()
        doc = _report([("sliding", 1000, 128, cap)])
        (tmp_path / name / "report.json").write_text(json.dumps(doc))
    sides = [str(tmp_path / n / "report.json") for n in ("run1", "run2")]
    code, stdout, stderr = golf("compare", *sides, "-f", "md", server="http://127.0.0.1:9")
    assert code == 0, stderr
    assert (
        stdout.startswith("A = j_x (run1/report.json)") and "B = j_x (run2/report.json)" in stdout
    )
    assert "> PARTIAL RUN: B scored only the first windows of sliding" in stdout
