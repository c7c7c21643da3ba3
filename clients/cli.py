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
from golf.spec.cli_params import RecordOverrides, eval_options, protocol_help
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
    """The lowest val_bpb over a job's protocols, named: final once it succeeded, else the
    running value of the windows scored so far, marked `(running)` (or `(stopped)` for a
    job that ended without a report); — before any."""
    values = [(r["val_bpb"], p) for p, r in (job.get("running") or {}).items() if r.get("val_bpb")]
    if not values:
        return "—"
    bpb, protocol = min(values)
    state = job["state"]
    if state == "succeeded":
        mark = ""
    else:
        mark = " (running)" if state in ("queued", "running") else " (stopped)"
    return f"{bpb:.4f} {protocol}{mark}"


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
    code: Annotated[
        Path | None,
        typer.Option(
            "--code",
            help="The submission's code file (train_gpt.py as submitted): its bytes count "
            "with the artifact's against the 16,000,000-byte cap; the service stores them.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Show live progress, then print the report.")
    ] = False,
    rerun: Annotated[
        bool,
        typer.Option(
            "--rerun",
            help="Evaluate again even if one of your jobs already succeeded on the same "
            "artifact, dataset, protocols, parameters and group (its report is reused).",
        ),
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
    checked with the server (golf datasets) and the protocol names here, before the
    upload; the parameters when the job is posted. A job of yours that already succeeded
    on the same inputs is reused (its id printed, a note on stderr) unless --rerun or
    --code is given.
    """
    fmt = _format(fmt, as_json)
    if group is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", group):
        fail(f"--group {group!r}: 1 to 64 of A-Z a-z 0-9 . _ -")
    given = params.model_dump(mode="json", exclude_unset=True)
    from golf.spec.records import code_file
    from golf.spec.registry import protocol_names

    for name in protocol:  # before anything is uploaded
        if name not in protocol_names():
            fail(f"unknown protocol {name!r}; expected one of: {', '.join(protocol_names())}")
    declared = code_file(code) if code is not None else None
    with Client(server, api_key) as client:
        _check_dataset(client, dataset)
        artifact_id = _artifact_id(client, artifact)
        twin = None
        if not rerun and declared is None:
            twin = _identical_job(client, artifact_id, dataset, protocol, params, group)
        if twin is not None:
            err.print(
                f"job {twin['id']} already scored these inputs (succeeded); reusing its "
                "report (pass --rerun to evaluate again)",
                markup=False,
            )
            job = twin
        else:
            job = client.submit(
                artifact_id, dataset, protocol, given, priority, group=group, code=declared
            )
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
    job: Annotated[
        str | None,
        typer.Argument(help="Job id (j_…); or --group NAME.", show_default=False),
    ] = None,
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
    group: Annotated[
        str | None,
        typer.Option(
            "--group",
            help="With -f submission: a seed group (your succeeded jobs submitted with "
            "--group NAME): val_bpb is the seeds' mean, with val_bpb_std and seed_results.",
            show_default=False,
        ),
    ] = None,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="With -f submission: export a partial run (max_windows cut it short of "
            'the whole val), marked "partial": true; refused without it.',
        ),
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """The report of a finished job: a table, the API's JSON, markdown for a PR, or the
    fields of a Parameter Golf submission.json (of one job, or of a seed group)."""
    submitting = fmt.lower() == "submission" and not as_json
    if (job is None) == (group is None):
        fail("pass a job id, or --group NAME (with -f submission), not both")
    if group is not None and not submitting:
        fail("--group goes with -f submission; see a group's seeds with golf compare --group")
    if submitting:
        with Client(server, api_key) as client:
            if group is not None:
                seeds = [
                    (_report(client, j["id"]), j, client.artifact(j["artifact"]))
                    for j in _group_jobs(client, group)
                ]
                doc = group_submission(group, seeds, protocol, allow_partial)
            else:
                assert job is not None
                result = _report(client, job)
                job_doc = _job(client, job)
                artifact = client.artifact(result["artifact"]["id"])
                doc = submission(result, job_doc, artifact, protocol, allow_partial)
        typer.echo(json.dumps(doc, indent=2))
        return
    assert job is not None
    fmt = _format(fmt, as_json)
    with Client(server, api_key) as client:
        result = _report(client, job)
        dataset = _job(client, job)["dataset"] if fmt != "json" else None
    _show_result(result, fmt, dataset)


def _chosen(report: dict[str, Any], protocol: str | None, allow_partial: bool) -> dict[str, Any]:
    """The protocol report a submission is made of; a partial one only if allowed."""
    from golf.spec.tables import is_partial

    by_protocol = {r["protocol"]: r for r in report["reports"]}
    name = protocol or report["reports"][0]["protocol"]
    if name not in by_protocol:
        fail(f"--protocol {name}: job {report['job']} ran {', '.join(by_protocol)}")
    chosen = by_protocol[name]
    if is_partial(chosen) and not allow_partial:
        total = chosen.get("windows_total")
        scored = f"{chosen['windows']:,} of {total:,}" if total else f"{chosen['windows']:,}"
        fail(
            f"job {report['job']} is a partial run ({name} scored {scored} windows): "
            "not the whole val's val_bpb; pass --allow-partial to export it marked partial"
        )
    return chosen


def _code_bytes(report: dict[str, Any], artifact: dict[str, Any]) -> int | None:
    """The code bytes the report counted, else the artifact's declaration; None if none."""
    art = report.get("artifact") or {}
    if art.get("code_declared") is not None:
        return art["code_bytes"] if art["code_declared"] else None
    return artifact.get("code_bytes") or None


def _no_code_note() -> None:
    err.print(
        "note: bytes_code omitted: code size not declared "
        "(golf submit --code FILE, or golf import-pg --code-bytes)",
        markup=False,
    )


def submission(
    report: dict[str, Any],
    job: dict[str, Any],
    artifact: dict[str, Any],
    protocol: str | None,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """What golf-eval knows of a Parameter Golf submission.json: val_bpb (of `protocol`,
    default the first), val_loss, bytes_total and bytes_code (only when the code size is
    declared), plus where the numbers come from (`golf_eval`). A partial run is refused
    unless `allow_partial`, and then marked `"partial": true`."""
    chosen = _chosen(report, protocol, allow_partial)
    name = chosen["protocol"]
    doc: dict[str, Any] = {
        "val_bpb": chosen["val_bpb"],
        "val_loss": chosen["val_loss"],
        "val_bpb_by_protocol": {r["protocol"]: r["val_bpb"] for r in report["reports"]},
        "bytes_total": report["artifact"]["total_bytes"],
    }
    if (code := _code_bytes(report, artifact)) is not None:
        doc["bytes_code"] = code
    else:
        _no_code_note()
    if from_golf := _partial_mark(chosen):
        doc |= from_golf
    doc["golf_eval"] = {
        "protocol": name,
        "environment": report.get("environment"),
        "digest": report.get("digest"),
        "job": report["job"],
        "artifact": report["artifact"]["id"],
        "dataset": {"name": job["dataset"], "sha256": chosen.get("dataset_sha256")},
        "ci95_within_run": chosen.get("ci95"),
        "eval_time_s": chosen.get("wall_s"),
    }
    return doc


def _partial_mark(chosen: dict[str, Any]) -> dict[str, Any]:
    from golf.spec.tables import is_partial

    if not is_partial(chosen):
        return {}
    return {
        "partial": True,
        "windows": chosen["windows"],
        "windows_total": chosen.get("windows_total"),
    }


def group_submission(
    name: str,
    seeds: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
    protocol: str | None,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """A seed group's submission.json fields, as the records' have them: val_bpb (the
    mean over seeds), val_bpb_std (sample, ddof 1), seeds, seed_results per seed. A seed
    is named by its artifact's provenance seed when each has exactly one, distinct; else
    by its job id."""
    from golf.spec.stats import mean_std

    chosen = [_chosen(report, protocol, allow_partial) for report, _, _ in seeds]
    names = {r["protocol"] for r in chosen}
    if len(names) > 1:
        fail(
            f"group {name}: its jobs' first protocols differ "
            f"({', '.join(sorted(names))}); pass --protocol"
        )
    declared = [(a.get("provenance") or {}).get("seeds") or [] for _, _, a in seeds]
    keys: list[Any] = [d[0] for d in declared if len(d) == 1]
    if len(keys) != len(seeds) or len(set(keys)) != len(keys):
        keys = [job["id"] for _, job, _ in seeds]
    mean, std = mean_std([r["val_bpb"] for r in chosen])
    loss, _ = mean_std([r["val_loss"] for r in chosen])
    results: dict[str, Any] = {}
    for key, (report, job, artifact), r in zip(keys, seeds, chosen, strict=True):
        art = report["artifact"]
        results[str(key)] = {
            "val_bpb": r["val_bpb"],
            "val_loss": r["val_loss"],
            "artifact_bytes": art.get("artifact_bytes") or artifact.get("bytes"),
            "bytes_total": art["total_bytes"],
            "eval_time_s": r.get("wall_s"),
            "job": job["id"],
            **_partial_mark(r),
        }
    codes = [_code_bytes(report, artifact) for report, _, artifact in seeds]
    doc: dict[str, Any] = {
        "val_bpb": mean,
        "val_bpb_std": std,
        "val_loss": loss,
        "seeds": keys,
        "seed_results": results,
        "bytes_total": max(report["artifact"]["total_bytes"] for report, _, _ in seeds),
    }
    if None not in codes:
        doc["bytes_code"] = max(c for c in codes if c is not None)
    else:
        _no_code_note()
    if any(_partial_mark(r) for r in chosen):
        doc["partial"] = True
    doc["golf_eval"] = {
        "group": name,
        "protocol": chosen[0]["protocol"],
        "jobs": [job["id"] for _, job, _ in seeds],
        "digests": [report.get("digest") for report, _, _ in seeds],
        "dataset": {"name": seeds[0][1]["dataset"], "sha256": chosen[0].get("dataset_sha256")},
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
    rule: Annotated[
        str | None,
        typer.Option(
            help="record: Parameter Golf's record rule over the seed groups (the first is "
            "the standing record): one-sided Welch over the seeds' val_loss in nats.",
            show_default=False,
        ),
    ] = None,
    margin_nats: Annotated[
        float, typer.Option(min=0, help="With --rule record: the improvement to beat.")
    ] = 0.005,
    alpha: Annotated[
        float, typer.Option(min=0, max=1, help="With --rule record: the one-sided level.")
    ] = 0.01,
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
    and each group against the first: Welch's t-test and a pooled-window bootstrap
    (within-run: it ignores seed variance). With --rule record, the official verdict:
    does each group beat the first by more than --margin-nats at p < --alpha?
    """
    from clients.compare import Group, compare_groups, compare_sides, load_side, side_names

    fmt = _format(fmt, as_json)
    sides, groups = sides or [], _group_specs(group or [])
    if groups and sides:
        fail("pass sides or --group, not both (a group lists its sides: --group NAME=A,B)")
    if not groups and len(sides) < 2:
        fail("compare needs two sides or more (job ids, report files, saved folders)")
    if rule not in (None, "record"):
        fail(f"unknown --rule {rule}; the one rule is record")
    if rule == "record" and len(groups) < 2:
        fail("--rule record compares seed groups: pass --group NAME=A,B,… for each (≥ 2)")
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
            record = (margin_nats, alpha) if rule == "record" else None
            doc = compare_groups(made, protocol, resamples, seed, record)
            view = (groups_table, groups_markdown)
    if fmt == "json":
        typer.echo(json.dumps(doc, indent=2))
    elif fmt == "md":
        typer.echo(view[1](doc), nl=False)
    else:
        out.print(view[0](doc))


@service_errors
def leaderboard(
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset name on the server; default: its only one.", show_default=False),
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Only this protocol.", show_default=False)
    ] = None,
    sort: Annotated[
        str, typer.Option(help="val_bpb, or bytes (total bytes, smallest first).")
    ] = "val_bpb",
    board: Annotated[
        str,
        typer.Option(help="mine (your jobs; an admin's: everyone's) or shared (published)."),
    ] = "mine",
    include_partial: Annotated[
        bool,
        typer.Option("--include-partial", help="Show partial runs too, marked and unranked."),
    ] = False,
    fmt: FormatOpt = "table",
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Seed groups ranked by mean val_bpb per protocol (a group: jobs submitted with
    --group; else an artifact, n = 1), with n, ± std, eval parameters, owner and eval
    time. Partial runs are left off unless --include-partial."""
    fmt = _format(fmt, as_json)
    if sort not in ("val_bpb", "bytes"):
        fail(f"unknown --sort {sort}; use val_bpb or bytes")
    if board not in ("mine", "shared"):
        fail(f"unknown --board {board}; use mine or shared")
    with Client(server, api_key) as client:
        if dataset is None:
            known = [d["name"] for d in client.datasets()]
            if len(known) != 1:
                fail(f"pass --dataset: the server serves {', '.join(known) or 'none'}")
            dataset = known[0]
        doc = client.leaderboard(dataset, protocol, board, include_partial)
    doc["rows"] = sort_leaderboard(doc["rows"], sort)
    if fmt == "json":
        typer.echo(json.dumps(doc, indent=2))
    elif fmt == "md":
        typer.echo(leaderboard_markdown(doc), nl=False)
    else:
        out.print(leaderboard_table(doc))


@service_errors
def publish(
    jobs: Annotated[list[str], typer.Argument(help="Job ids (j_…).", show_default=False)],
    unpublish: Annotated[
        bool, typer.Option("--unpublish", help="Take them off the shared board.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Put succeeded jobs of yours on the shared board every owner sees
    (golf leaderboard --board shared)."""
    with Client(server, api_key) as client:
        for job_id in jobs:
            try:
                doc = client.publish(job_id, not unpublish)
            except ServiceError as e:
                if e.status == 404:
                    fail(f"unknown job {job_id} (HTTP 404); list yours with golf jobs")
                raise
            typer.echo(f"{doc['job']} {'published' if doc['published'] else 'unpublished'}")


def _identical_job(
    client: Client,
    artifact: str,
    dataset: str,
    protocols: list[str],
    params: EvalParams,
    group: str | None,
) -> dict[str, Any] | None:
    """The caller's newest succeeded job with these inputs (artifact, dataset, protocols in
    order, every evaluation parameter, group), or None: evaluation is exact, so its
    report is the one a new job would give."""
    wanted = params.model_dump(mode="json")
    for job in client.jobs():  # newest first
        if (
            job["state"] == "succeeded"
            and job["artifact"] == artifact
            and job["dataset"] == dataset
            and job["protocols"] == list(protocols)
            and job["params"] == wanted
            and job.get("group") == group
        ):
            return job
    return None


def _group_jobs(client: Client, name: str) -> list[dict[str, Any]]:
    """The caller's succeeded jobs submitted with `--group name`, oldest first."""
    listed = [j for j in client.jobs() if j.get("group") == name and j["state"] == "succeeded"]
    if not listed:
        fail(f"no succeeded jobs in group {name!r}; submit seeds with golf submit --group {name}")
    return sorted(listed, key=lambda j: (j["created_at"], j["id"]))


@service_errors
@user_errors
def upload_record(
    record: Annotated[
        Path, typer.Argument(help="A record folder (train_gpt.py, logs, ...).", show_default=False)
    ],
    artifact: Annotated[
        Path, typer.Option(help="The record's artifact (final_model*.ptz).", show_default=False)
    ],
    dataset: Annotated[
        str,
        typer.Option(help="Dataset on the server whose tokenizer the artifact was trained with."),
    ],
    set_: RecordOverrides = None,
    as_json: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """`golf import` on the server: send a record folder's code, logs and submission.json
    with its artifact; the server reads them as `golf import` does (never running the
    code), stores the `.golf` and prints its id (for golf submit)."""
    from clients.sdk import record_files

    if not record.is_dir():
        fail(f"{record}: not a folder")
    if not artifact.is_file():
        fail(f"{artifact}: no such file")
    if not record_files(record):
        fail(f"{record}: no record files (.py, .log, .txt, .json, .md) in it")
    with Client(server, api_key) as client:
        _check_dataset(client, dataset)
        doc = client.import_record(record, artifact, dataset, set_ or [])
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    for line in doc["decisions"]:
        err.print(line, markup=False)
    err.print(
        f"imported {doc['record']}: {doc['format']}, {doc['arch']}, {doc['total_bytes']:,} "
        f"bytes ({doc['verdict']})",
        markup=False,
    )
    typer.echo(doc["id"])


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
    for command in (submit, watch, report, compare, jobs, datasets, cancel, leaderboard, publish):
        app.command(command.__name__)(command)
    app.command("upload-record")(upload_record)
