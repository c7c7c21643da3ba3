"""`golf submit / watch / report / jobs`: the service from a shell, through the SDK.

Plugged into `golf` by the `golf.commands` entry point. Like the rest of clients/ it
imports neither torch nor golf, so it also works from a lean client-only install.
stdout carries results; progress and errors go to stderr; a refusal by the server or
an unreachable server is one line `error: …` and exit 2; a failed job exits 1.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from clients.sdk import TERMINAL, Client, ServiceError

# As golf/cli.py: pipes and CI logs get a width that fits the tables.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)

DEFAULT_SERVER = "http://127.0.0.1:8000"
_SHA256 = re.compile(r"[0-9a-f]{64}")

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="GOLF_SERVER", help="URL of the golf-eval service.")
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", envvar="GOLF_API_KEY", help="Bearer API key.", show_default=False),
]
JobArg = Annotated[str, typer.Argument(help="Job id (j_…).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def service_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a refusal or a network failure into `error: <one line>` and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        server = kwargs.get("server", DEFAULT_SERVER)
        try:
            return command(*args, **kwargs)
        except ServiceError as e:
            hint = "; pass --api-key or set GOLF_API_KEY" if e.status == 401 else ""
            _fail(f"{e}{hint}")
        except httpx.ConnectError:
            _fail(f"cannot reach server at {server}")
        except httpx.TimeoutException:
            _fail(f"server at {server} did not answer in time")
        except (httpx.TransportError, httpx.InvalidURL) as e:
            _fail(f"cannot talk to server at {server}: {e}")

    return wrapper


class JobBars:
    """Progress on stderr from job objects: one bar for the job, one per protocol shard."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:>14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows  {task.fields[info]}"),
            TimeElapsedColumn(),
            console=err,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> JobBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, job: dict[str, Any]) -> None:
        total = job.get("progress") or {}
        running = "  ".join(
            f"{name} {r['val_bpb']:.4f}"
            for name, r in (job.get("running") or {}).items()
            if r.get("val_bpb") is not None  # None until the protocol's first batch lands
        )
        eta = f"  eta {job['eta_s']:.0f}s" if job.get("eta_s") is not None else ""
        self._set(
            "job",
            total.get("windows_done", 0),
            total.get("windows_total"),
            f"{job['state']}  {running}{eta}".rstrip(),
        )
        for s in job.get("shards") or []:
            info = s["state"] + (f" on {s['worker']}" if s.get("worker") else "")
            name = f"{s['protocol']} #{s['shard']}"
            self._set(name, s["windows_done"], s["windows_total"], info)

    def _set(self, name: str, done: int, total: int | None, info: str) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total, info=info)
        self.progress.update(self.tasks[name], completed=done, total=total, info=info)


def _follow(client: Client, job_id: str) -> dict[str, Any]:
    job = client.get(job_id)  # an unknown job fails before any bar is drawn
    if job["state"] in TERMINAL:
        return client.wait(job_id)  # nothing left to show progress of
    with JobBars() as bars:
        bars.update(job)
        return client.wait(job_id, progress=bars.update)


def _show_result(result: dict[str, Any], as_json: bool) -> None:
    """Print a finished job's report; a failed or cancelled job is an error, exit 1."""
    if "reports" not in result:
        reason = f": {result['error']}" if result.get("error") else ""
        _fail(f"job {result['id']} {result['state']}{reason}", code=1)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        out.print(report_table(result))


def report_table(report: dict[str, Any]) -> Table:
    """Protocol rows with Δ to the first; per-protocol flags in the row, others below."""
    art = report["artifact"]
    env = report.get("environment") or {}
    flags = report.get("flags") or []
    shared = [f for f in flags if ":" not in f]
    caption = [f"digest {report['digest'][:16]}…"] if report.get("digest") else []
    if env:
        caption.append(f"{env.get('device')} · torch {env.get('torch')}")
    if shared:
        caption.append("flags: " + ", ".join(shared))
    table = Table(
        title=f"job {report['job']}: artifact {art['id'][:12]} "
        f"({art['total_bytes']:,} bytes, {art['verdict']})",
        title_justify="left",
        caption="  ·  ".join(caption) or None,
        caption_justify="left",
    )
    for name in ("protocol", "val_bpb", "Δ bpb", "tokens", "windows", "seconds", "flags"):
        table.add_column(name, justify="left" if name in ("protocol", "flags") else "right")
    first = report["reports"][0]["val_bpb"]
    for r in report["reports"]:
        row_flags = [f.split(":", 1)[0] for f in flags if f.endswith(f":{r['protocol']}")]
        table.add_row(
            r["protocol"],
            f"{r['val_bpb']:.6f}",
            f"{r['val_bpb'] - first:+.6f}",
            f"{r['tokens']:,}",
            f"{r['windows']:,}",
            f"{r['elapsed_s']:.2f}",
            ", ".join(row_flags),
        )
    return table


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    title = f"{len(jobs)} job" + ("" if len(jobs) == 1 else "s")
    table = Table(title=title, title_justify="left")
    for name in ("id", "owner", "state", "dataset", "protocols", "windows", "priority"):
        table.add_column(name, justify="right" if name in ("windows", "priority") else "left")
    table.add_column("created")
    for j in jobs:
        p = j.get("progress") or {}
        table.add_row(
            j["id"],
            j["owner"],
            j["state"],
            j["dataset"],
            ", ".join(j["protocols"]),
            f"{p.get('windows_done', 0):,}/{p.get('windows_total', 0):,}",
            str(j["priority"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["created_at"])),
        )
    return table


def _artifact_id(client: Client, artifact: str) -> str:
    """Upload ARTIFACT if it is a file; otherwise it must already be an artifact id."""
    path = Path(artifact)
    if path.is_file():
        doc = client.upload(path)
        err.print(
            f"uploaded {path.name}: {doc['id'][:12]} ({doc['total_bytes']:,} bytes, "
            f"{doc['verdict']})"
        )
        return doc["id"]
    if _SHA256.fullmatch(artifact):
        return artifact
    _fail(f"{artifact}: no such file, nor an artifact id (64 hex digits)")


@service_errors
def submit(
    artifact: Annotated[
        str, typer.Argument(help="A .golf file to upload, or an uploaded artifact's id.")
    ],
    dataset: Annotated[str, typer.Option(help="Dataset name on the server.")],
    protocol: Annotated[
        list[str], typer.Option(help="plain, sliding, slot or slot-causal; repeatable.")
    ],
    stride: Annotated[int | None, typer.Option(help="Window stride.")] = None,
    seq_len: Annotated[int | None, typer.Option(help="Window length L.")] = None,
    batch_windows: Annotated[int | None, typer.Option(help="Windows per batch B.")] = None,
    slot_steps: Annotated[int | None, typer.Option(help="SLOT AdamW steps.")] = None,
    slot_lr: Annotated[float | None, typer.Option(help="SLOT peak learning rate.")] = None,
    slot_lr_min: Annotated[float | None, typer.Option(help="SLOT final learning rate.")] = None,
    max_windows: Annotated[int | None, typer.Option(help="Score only the first N.")] = None,
    batch_invariant: Annotated[
        bool, typer.Option("--batch-invariant", help="Normalise SLOT's loss per window.")
    ] = False,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress, then print the report.")
    ] = False,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Submit a job (uploading the artifact first if given a file); prints the job id."""
    given = {
        "stride": stride,
        "seq_len": seq_len,
        "batch_windows": batch_windows,
        "slot_steps": slot_steps,
        "slot_lr": slot_lr,
        "slot_lr_min": slot_lr_min,
        "max_windows": max_windows,
        "batch_invariant": batch_invariant or None,
    }
    params = {k: v for k, v in given.items() if v is not None}  # the server's defaults
    with Client(server, api_key) as client:
        job = client.submit(_artifact_id(client, artifact), dataset, protocol, params, priority)
        if wait:
            err.print(f"job {job['id']} {job['state']}")
            _show_result(_follow(client, job["id"]), as_json)
        elif as_json:
            typer.echo(json.dumps(job, indent=2))
        else:
            typer.echo(job["id"])


@service_errors
def watch(
    job: JobArg,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Live progress of a job until it ends, then its report."""
    with Client(server, api_key) as client:
        _show_result(_follow(client, job), as_json)


@service_errors
def report(
    job: JobArg,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """The report of a finished job: a table, or the full JSON."""
    with Client(server, api_key) as client:
        _show_result(client.report(job), as_json)


@service_errors
def jobs(
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Your jobs (an admin's: everyone's), newest first."""
    with Client(server, api_key) as client:
        listed = client.jobs()
    if as_json:
        typer.echo(json.dumps({"jobs": listed}, indent=2))
    else:
        out.print(jobs_table(listed))


def register(app: typer.Typer) -> None:
    for command in (submit, watch, report, jobs):
        app.command(command.__name__)(command)
