"""`golf submit / watch / report / compare / jobs`: the service from a shell, via the SDK.

Plugged into `golf` by the `golf.commands` entry point. Like the rest of clients/ it
never imports torch or ray, so it works from a lean client-only install; of golf it uses
only the torch-free modules: the consoles (golf.spec.console) and the evaluation parameters,
whose fields become `submit`'s options (golf.spec.cli_params).
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
    compare_markdown,
    compare_table,
    groups_markdown,
    groups_table,
    leaderboard_markdown,
    leaderboard_table,
    report_markdown,
    report_table,
    sort_leaderboard,
)
from golf.spec.cli_params import eval_options, protocol_help
from golf.spec.console import err, fail, out, user_errors
from golf.spec.params import EvalParams

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
            fail(_no_report(client, job_id, e))
        raise


def _no_report(client: Client, job_id: str, refusal: ServiceError) -> str:
    """Why a job has no report, and what to do about it, by its state."""
    job = client.get(job_id)
    state = job["state"]
    if state == "cancelled":
        return f"job {job_id} was cancelled, so it has no report; submit it again with golf submit"
    if state == "failed":
        reason = f": {job['error']}" if job.get("error") else ""
        return f"job {job_id} failed{reason}; it has no report"
    if state in ("queued", "running"):
        status = f"HTTP {refusal.status}"
        return f"job {job_id} is {state} ({status}); follow it with golf watch {job_id}"
    return str(refusal)


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


def best_bpb(job: dict[str, Any]) -> str:
    """The lowest val_bpb over a job's protocols: final once it succeeded, else the
    running value of the windows scored so far, marked `(partial)`; — before any."""
    values = [r["val_bpb"] for r in (job.get("running") or {}).values() if r.get("val_bpb")]
    if not values:
        return "—"
    return f"{min(values):.4f}" + ("" if job["state"] == "succeeded" else " (partial)")


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    title = f"{len(jobs)} job" + ("" if len(jobs) == 1 else "s")
    table = Table(title=title, title_justify="left")
    groups = any(j.get("group") for j in jobs)
    names = ("id", "owner", *(("group",) if groups else ()), "state", "dataset", "protocols")
    for name in (*names, "val_bpb", "windows", "priority"):
        right = name in ("val_bpb", "windows", "priority")
        table.add_column(name, justify="right" if right else "left", no_wrap=name == "id")
    table.add_column("created")
    for j in jobs:
        p = j.get("progress") or {}
        table.add_row(
            j["id"],
            j["owner"],
            *((j.get("group") or "",) if groups else ()),
            j["state"],
            j["dataset"],
            ", ".join(j["protocols"]),
            best_bpb(j),
            f"{p.get('windows_done', 0):,}/{p.get('windows_total', 0):,}",
            str(j["priority"]),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["created_at"])),
        )
    return table


def _check_dataset(client: Client, dataset: str) -> None:
    """Refuse a dataset the server does not serve, naming those it does (before an upload)."""
    known = [d["name"] for d in client.datasets()]
    if dataset not in known:
        served = ", ".join(known) if known else "none (its --data-root holds no datasets)"
        fail(f"unknown dataset {dataset!r}; the server serves: {served} (see golf datasets)")


def _artifact_id(client: Client, artifact: str) -> str:
    """Upload ARTIFACT if it is a file; otherwise it must already be an artifact id."""
    path = Path(artifact)
    if path.is_file():
        try:
            doc = client.upload(path)
        except ServiceError as e:
            if e.status in (413, 422):  # the server's reason names the file already
                fail(f"{e}; a .golf file is written by golf train or golf import-pg")
            raise
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
    group: Annotated[
        str | None,
        typer.Option(
            help="Tag the job with a submission's name, shared by its seeds' jobs "
            "(golf compare --group NAME; the leaderboard ranks a group as one entry).",
            show_default=False,
        ),
    ] = None,
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
    sent (checked here first); the server's defaults fill in the others. The dataset is
    checked with the server (golf datasets) before the upload; protocols and parameters
    when the job is posted, after it.
    """
    fmt = _format(fmt, as_json)
    if group is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", group):
        fail(f"--group {group!r}: 1 to 64 of A-Z a-z 0-9 . _ -")
    given = params.model_dump(mode="json", exclude_unset=True)
    with Client(server, api_key) as client:
        _check_dataset(client, dataset)
        artifact_id = _artifact_id(client, artifact)
        job = client.submit(artifact_id, dataset, protocol, given, priority, group=group)
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
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="table, json (the API's report), md (a table for a PR) or submission "
            "(the fields of a Parameter Golf submission.json).",
        ),
    ] = "table",
    as_json: JsonOpt = False,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="With -f submission: the protocol whose val_bpb is submitted (default: "
            "the job's first).",
            show_default=False,
        ),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """The report of a finished job: a table, the API's JSON, markdown for a PR, or the
    fields of a Parameter Golf submission.json."""
    if fmt.lower() == "submission" and not as_json:
        with Client(server, api_key) as client:
            result = _report(client, job)
            job_doc = _job(client, job)
            artifact = client.artifact(result["artifact"]["id"])
        typer.echo(json.dumps(submission(result, job_doc, artifact, protocol), indent=2))
        return
    fmt = _format(fmt, as_json)
    with Client(server, api_key) as client:
        result = _report(client, job)
        dataset = _job(client, job)["dataset"] if fmt != "json" else None
    _show_result(result, fmt, dataset)


def submission(
    report: dict[str, Any],
    job: dict[str, Any],
    artifact: dict[str, Any],
    protocol: str | None,
) -> dict[str, Any]:
    """What golf-eval knows of a Parameter Golf submission.json: val_bpb (of `protocol`,
    default the first), val_loss, bytes_total and bytes_code (only when the artifact
    declares its code size), plus where the numbers come from (`golf_eval`)."""
    by_protocol = {r["protocol"]: r for r in report["reports"]}
    name = protocol or report["reports"][0]["protocol"]
    if name not in by_protocol:
        fail(f"--protocol {name}: job {report['job']} ran {', '.join(by_protocol)}")
    chosen = by_protocol[name]
    doc: dict[str, Any] = {
        "val_bpb": chosen["val_bpb"],
        "val_loss": chosen["val_loss"],
        "val_bpb_by_protocol": {p: r["val_bpb"] for p, r in by_protocol.items()},
        "bytes_total": report["artifact"]["total_bytes"],
    }
    if artifact.get("code_bytes", 0) > 0:
        doc["bytes_code"] = artifact["code_bytes"]
    else:
        err.print(
            "note: bytes_code omitted: the artifact declares no code size "
            "(golf import-pg --code-bytes, or the trainer's packing, records it)",
            markup=False,
        )
    doc["golf_eval"] = {
        "protocol": name,
        "environment": report.get("environment"),
        "digest": report.get("digest"),
        "job": report["job"],
        "artifact": report["artifact"]["id"],
        "dataset": {"name": job["dataset"], "sha256": chosen.get("dataset_sha256")},
    }
    return doc


ResamplesOpt = Annotated[
    int, typer.Option(min=2000, help="Bootstrap resamples (at least 2,000).", show_default=True)
]


def _group_specs(specs: list[str]) -> list[tuple[str, list[str] | None]]:
    """`NAME=A,B,C` (explicit seeds) or `NAME` (the service's jobs of that group)."""
    groups = []
    for spec in specs:
        name, eq, members = spec.partition("=")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
            fail(f"--group {spec!r}: NAME=SIDE,SIDE,… or a service group NAME ([A-Za-z0-9._-])")
        listed = [m for m in members.split(",") if m] if eq else None
        if eq and not listed:
            fail(f"--group {spec!r}: no sides after '='")
        groups.append((name, listed))
    if len({name for name, _ in groups}) < len(groups):
        fail("--group: each group needs its own name")
    return groups


@service_errors
@user_errors
def compare(
    sides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Job ids, report JSON files or golf eval --save folders; Δ is to the first.",
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            "-g",
            help="A seed group: NAME=SIDE,SIDE,… or NAME (the service's succeeded jobs "
            "submitted with --group NAME). Repeat for each group; the first is the baseline.",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        list[str] | None,
        typer.Option(help="Only these protocols (repeatable).", show_default=False),
    ] = None,
    resamples: ResamplesOpt = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """val_bpb of runs side by side: Δ vs the first with a paired-bootstrap 95% CI.

    Sides are job ids, `golf eval --save` folders (both have per-window records), or
    report JSON files (golf report -f json, golf eval --json: no CI). Windows pair when
    the dataset and plan (seq_len, stride, plan, max_windows) are the same; else the Δ is
    shown unpaired, saying why. With --group, each group's mean ± std over its seeds,
    and each group against the first: Welch's t-test and a pooled-window bootstrap.
    """
    from clients.compare import Group, compare_groups, compare_sides, load_side, side_names

    fmt = _format(fmt, as_json)
    sides, groups = sides or [], _group_specs(group or [])
    if groups and sides:
        fail("pass sides or --group, not both (a group lists its sides: --group NAME=A,B)")
    if not groups and len(sides) < 2:
        fail("compare needs two sides or more (job ids, report files, saved folders)")
    with contextlib.ExitStack() as stack:

        @functools.cache
        def client() -> Client:  # only when a side is a job id
            return stack.enter_context(Client(server, api_key))

        def job(job_id: str) -> tuple[dict[str, Any], str | None, Any]:
            c = client()
            report = _report(c, job_id)
            return report, _job(c, job_id)["dataset"], lambda p: c.windows(job_id, p)

        if not groups:
            names = side_names(len(sides))
            loaded = [load_side(s, n, job) for s, n in zip(sides, names, strict=True)]
            doc = compare_sides(loaded, protocol, resamples, seed)
            view = (compare_table, compare_markdown)
        else:
            made = []
            for name, members in groups:
                if members is None:
                    members = [j["id"] for j in _group_jobs(client(), name)]
                seeds = [load_side(m, f"{name}[{i + 1}]", job) for i, m in enumerate(members)]
                made.append(Group(name, seeds))
            doc = compare_groups(made, protocol, resamples, seed)
            view = (groups_table, groups_markdown)
    if fmt == "json":
        typer.echo(json.dumps(doc, indent=2))
    elif fmt == "md":
        typer.echo(view[1](doc), nl=False)
    else:
        out.print(view[0](doc))


@service_errors
def leaderboard(
    dataset: Annotated[str, typer.Option(help="Dataset name on the server.")],
    protocol: Annotated[
        str | None, typer.Option(help="Only this protocol.", show_default=False)
    ] = None,
    sort: Annotated[
        str, typer.Option(help="val_bpb, or bytes (total bytes, smallest first).")
    ] = "val_bpb",
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """The best val_bpb per submission (its group, else its artifact) per protocol, over
    your succeeded jobs on a dataset (an admin's: everyone's)."""
    fmt = _format(fmt, as_json)
    if sort not in ("val_bpb", "bytes"):
        fail(f"unknown --sort {sort}; use val_bpb or bytes")
    with Client(server, api_key) as client:
        doc = client.leaderboard(dataset, protocol)
    doc["rows"] = sort_leaderboard(doc["rows"], sort)
    if fmt == "json":
        typer.echo(json.dumps(doc, indent=2))
    elif fmt == "md":
        typer.echo(leaderboard_markdown(doc), nl=False)
    else:
        out.print(leaderboard_table(doc))


def _group_jobs(client: Client, name: str) -> list[dict[str, Any]]:
    """The caller's succeeded jobs submitted with `--group name`, oldest first."""
    listed = [j for j in client.jobs() if j.get("group") == name and j["state"] == "succeeded"]
    if not listed:
        fail(f"no succeeded jobs in group {name!r}; submit seeds with golf submit --group {name}")
    return sorted(listed, key=lambda j: (j["created_at"], j["id"]))


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


@service_errors
def datasets(
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """The datasets the server evaluates on (the names `golf submit --dataset` takes)."""
    with Client(server, api_key) as client:
        listed = client.datasets()
    if as_json:
        typer.echo(json.dumps({"datasets": listed}, indent=2))
    else:
        out.print(datasets_table(listed))


def datasets_table(listed: list[dict[str, Any]]) -> Table:
    title = f"{len(listed)} dataset" + ("" if len(listed) == 1 else "s")
    table = Table(title=title, title_justify="left")
    for name in ("name", "val tokens", "vocab", "sha256", "tokenizer"):
        table.add_column(name, justify="right" if name in ("val tokens", "vocab") else "left")
    for d in listed:
        table.add_row(
            d["name"],
            f"{d['val_tokens']:,}",
            str(d["vocab_size"]),
            d["sha256"][:12],
            d["tokenizer_sha256"][:12],
        )
    return table


@service_errors
def cancel(
    job: JobArg,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Cancel a queued or running job; its running batches stop within seconds."""
    with Client(server, api_key) as client:
        try:
            doc = client.cancel(job)
        except ServiceError as e:
            if e.status == 404:
                fail(f"unknown job {job} (HTTP 404); list yours with golf jobs")
            if e.status == 409:
                fail(f"{e}; see it with golf report {job}")
            raise
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(f"{doc['id']} {doc['state']}")


def register(app: typer.Typer) -> None:
    for command in (submit, watch, report, compare, jobs, datasets, cancel, leaderboard):
        app.command(command.__name__)(command)
