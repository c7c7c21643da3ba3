"""`golf submit / watch / report / compare / jobs`: the service from a shell, via the SDK.

Plugged into `golf` by the `golf.commands` entry point. Like the rest of clients/ it
never imports torch or ray, so it works from a lean client-only install; of golf it uses
only the torch-free modules: the consoles (golf.console) and the evaluation parameters,
whose fields become `submit`'s options (golf.cli_params).
stdout carries results; progress and errors go to stderr; a refusal by the server or
an unreachable server is one line `error: …` (with what to do) and exit 2; a failed
job exits 1. Ctrl-C during `watch` or `submit --wait` detaches (exit 0): the job runs on.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from clients.sdk import TERMINAL, Client, ServiceError
from clients.views import (
    LiveJob,
    compare_doc,
    compare_markdown,
    compare_table,
    report_markdown,
    report_table,
)
from golf.cli_params import eval_options, protocol_help
from golf.console import err, fail, out, user_errors
from golf.params import EvalParams

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
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --format json.")]
FORMATS = ("table", "json", "md")
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="table (for a terminal), json (the API's report) or md (a table for a PR).",
    ),
]


_HINTS = {
    401: "; pass --api-key or set GOLF_API_KEY",
    429: "; wait for one of yours to end (golf jobs)",
}


def service_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a refusal or a network failure into `error: <one line>` and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        server = kwargs.get("server", DEFAULT_SERVER)
        try:
            return command(*args, **kwargs)
        except ServiceError as e:
            server_bug = "; the server failed, see its log" if e.status >= 500 else ""
            fail(f"{e}{_HINTS.get(e.status, server_bug)}")
        except httpx.ConnectError:
            fail(f"cannot reach server at {server}; pass --server or set GOLF_SERVER")
        except httpx.TimeoutException:
            fail(f"server at {server} did not answer in time; try again, or see its log")
        except (httpx.TransportError, httpx.InvalidURL) as e:
            fail(f"cannot talk to server at {server}: {e}")

    return wrapper


def _job(client: Client, job_id: str) -> dict[str, Any]:
    """The job object; an unknown job is one line saying how to find yours."""
    try:
        return client.get(job_id)
    except ServiceError as e:
        if e.status == 404:
            fail(f"unknown job {job_id} (HTTP 404); list yours with golf jobs")
        raise


def _report(client: Client, job_id: str) -> dict[str, Any]:
    """A finished job's report; before that (or if it failed), say how to follow it."""
    try:
        return client.report(job_id)
    except ServiceError as e:
        if e.status == 404:
            fail(f"unknown job {job_id} (HTTP 404); list yours with golf jobs")
        if e.status == 409:
            fail(f"{e}; follow it with golf watch {job_id}")
        raise


def _follow(client: Client, job_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Follow a job to its end under a live view: (result, last job object).

    Ctrl-C detaches, leaving the job running: one line saying so, and None.
    """
    try:
        job = _job(client, job_id)  # an unknown job fails before anything is drawn
        if job["state"] in TERMINAL:
            return client.wait(job_id), job  # nothing left to show progress of
        with LiveJob(job_id, err) as view:
            view.update(job)
            result = client.wait(job_id, progress=view.update)
            job = client.get(job_id)
            view.finish(job, result)
    except KeyboardInterrupt:
        typer.echo(f"detached; the job keeps running: golf watch {job_id}", err=True)
        return None
    return result, job


def _format(fmt: str, as_json: bool) -> str:
    """The output format; `--json` is `--format json`, kept for scripts written before."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        fail(f"unknown --format {fmt}; use one of {', '.join(FORMATS)}")
    if as_json and fmt not in ("table", "json"):
        fail(f"--json and --format {fmt} disagree; pass one of them")
    return "json" if as_json else fmt


def _show_result(result: dict[str, Any], fmt: str, dataset: str | None = None) -> None:
    """Print a finished job's report; a failed or cancelled job is an error, exit 1."""
    if "reports" not in result:
        reason = f": {result['error']}" if result.get("error") else ""
        fail(f"job {result['id']} {result['state']}{reason}", code=1)
    if fmt == "json":
        typer.echo(json.dumps(result, indent=2))
    elif fmt == "md":
        typer.echo(report_markdown(result, dataset), nl=False)
    else:
        out.print(report_table(result, dataset))


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
    fail(f"{artifact}: no such file, nor an artifact id (64 hex digits)")


@service_errors
@user_errors
@eval_options()
def submit(
    artifact: Annotated[
        str, typer.Argument(help="A .golf file to upload, or an uploaded artifact's id.")
    ],
    dataset: Annotated[str, typer.Option(help="Dataset name on the server.")],
    protocol: Annotated[list[str], typer.Option(help=protocol_help(repeatable=True))],
    params: EvalParams,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show live progress, then print the report.")
    ] = False,
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Submit a job (uploading the artifact first if given a file); prints the job id.

    With --wait, a live view on stderr until the job ends (Ctrl-C detaches, the job
    keeps running), then the report on stdout. Only the evaluation parameters given are
    sent (checked here first); the server's defaults fill in the others.
    """
    fmt = _format(fmt, as_json)
    given = params.model_dump(mode="json", exclude_unset=True)
    with Client(server, api_key) as client:
        job = client.submit(_artifact_id(client, artifact), dataset, protocol, given, priority)
        if wait:
            err.print(f"job {job['id']} {job['state']}")
            if followed := _follow(client, job["id"]):
                _show_result(followed[0], fmt, dataset)
        elif fmt == "json":
            typer.echo(json.dumps(job, indent=2))
        else:
            typer.echo(job["id"])


@service_errors
def watch(
    job: JobArg,
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Live progress of a job until it ends, then its report; Ctrl-C detaches."""
    fmt = _format(fmt, as_json)
    with Client(server, api_key) as client:
        if followed := _follow(client, job):
            result, last = followed
            _show_result(result, fmt, last["dataset"])


@service_errors
def report(
    job: JobArg,
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """The report of a finished job: a table, the API's JSON, or markdown for a PR."""
    fmt = _format(fmt, as_json)
    with Client(server, api_key) as client:
        result = _report(client, job)
        dataset = _job(client, job)["dataset"] if fmt != "json" else None
    _show_result(result, fmt, dataset)


def _load_side(spec: str, client: Callable[[], Client]) -> tuple[str, dict[str, Any]]:
    """A report file (from `golf report --format json`) or a job id: (label, report)."""
    path = Path(spec)
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            fail(f"{spec}: not a JSON report ({e}); write one with golf report JOB -f json")
        if not isinstance(doc, dict) or not doc.get("reports") or "artifact" not in doc:
            fail(f"{spec}: not a job report; write one with golf report JOB -f json > {spec}")
        return f"{doc.get('job', '?')} ({path.name})", doc
    if spec.startswith("j_"):
        return spec, _report(client(), spec)
    fail(f"{spec}: no such file, nor a job id (j_…); list your jobs with golf jobs")


@service_errors
def compare(
    a: Annotated[str, typer.Argument(help="Job id, or a report JSON file.", show_default=False)],
    b: Annotated[str, typer.Argument(help="Job id, or a report JSON file.", show_default=False)],
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """val_bpb of two jobs (or report files) side by side, Δ = B − A, and what differs."""
    fmt = _format(fmt, as_json)
    with contextlib.ExitStack() as stack:

        @functools.cache
        def client() -> Client:  # only when a side is a job id
            return stack.enter_context(Client(server, api_key))

        label_a, report_a = _load_side(a, client)
        label_b, report_b = _load_side(b, client)
    if fmt == "json":
        typer.echo(json.dumps(compare_doc(label_a, report_a, label_b, report_b), indent=2))
    elif fmt == "md":
        typer.echo(compare_markdown(label_a, report_a, label_b, report_b), nl=False)
    else:
        out.print(compare_table(label_a, report_a, label_b, report_b))


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
    for command in (submit, watch, report, compare, jobs):
        app.command(command.__name__)(command)
