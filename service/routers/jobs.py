"""Jobs: submit, inspect, follow (SSE), read the report and windows, cancel."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from golf.spec.jobplan import JobPlan, plan_job
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol
from service.auth import Caller, CallerDep
from service.capabilities import unrunnable
from service.costs import check_params, check_plan
from service.deps import AppState, StateDep
from service.errors import http_error
from service.events import StreamLimit
from service.openapi import (
    CONFLICT,
    INVALID,
    JOB_ERRORS,
    READ_ERRORS,
    STREAM_ERRORS,
    UNAUTHORIZED,
)
from service.schemas import (
    MAX_LISTED_SHARDS,
    JobCreate,
    JobList,
    JobOut,
    ReportOut,
    SeriesOut,
    ShardList,
    WindowList,
    job_object,
)
from service.store import ACTIVE, JobRow, OverCapacity, Store

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JOB_ID = re.compile(r"j_[0-9a-f]{16}", re.ASCII)
JobId = Annotated[str, Path(max_length=64)]


@router.post("", status_code=201, response_model=JobOut, responses=JOB_ERRORS)
async def submit_job(body: JobCreate, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    owner = None if caller.admin else caller.owner
    artifact = await s.reads(lambda store: store.artifact(body.artifact, owner))
    if artifact is None:
        raise http_error(404, f"unknown artifact {body.artifact}; upload it first")
    dataset = s.datasets.get(body.dataset)
    if dataset is None:
        raise http_error(404, f"unknown dataset {body.dataset!r}; see GET /v1/datasets")
    params = EvalParams.parse(body.params)
    for name in body.protocols:
        get_protocol(name)  # unknown names first, as one line
    check_params(params, body.protocols, s.settings)
    if (why := unrunnable(params, s.pool.capabilities())) is not None:
        raise http_error(422, why)

    pool = len(s.pool.workers)
    gang = body.chain_workers or pool
    if gang > pool:
        raise http_error(
            422, f"chain_workers {gang} exceeds this service's {pool} workers: at most {pool}"
        )

    def prepare() -> tuple[JobPlan, str]:
        dataset.check_compatible(artifact.tokenizer_sha256, artifact.vocab_size)
        tokens = dataset.val_tokens(params.seq_len)  # stream plans outline the tokens
        plan = plan_job(tokens, body.protocols, params, s.settings.batches_per_shard, gang)
        check_plan(plan, artifact, s.settings)
        return plan, dataset.sha256

    plan, dataset_sha256 = await run_in_threadpool(prepare)
    try:
        job_id = await run_in_threadpool(
            lambda: s.store.create_job(
                owner=caller.owner,
                artifact=body.artifact,
                dataset=body.dataset,
                dataset_sha256=dataset_sha256,
                params=params,
                plan=plan,
                priority=body.priority,
                max_active=s.settings.max_jobs_per_owner,
                budget=s.settings.owner_budget,
                group=body.group,
            )
        )
    except OverCapacity as e:
        raise http_error(429, str(e)) from None
    if body.code_bytes is not None:
        s.store.set_code(job_id, body.code_bytes, body.code_sha256)
    s.scheduler.wake()
    return await s.reads(view_job, job_id)


JOB_PAGE = 100
MAX_JOB_PAGE = 1_000


@router.get("", response_model=JobList, responses=UNAUTHORIZED | INVALID)
async def list_jobs(
    caller: CallerDep,
    s: StateDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_JOB_PAGE)] = JOB_PAGE,
) -> dict[str, Any]:
    """The caller's jobs (an admin's: everyone's), newest first, without shards, a page at
    a time: pass `next_cursor` back as `cursor` for the next page."""
    owner = None if caller.admin else caller.owner

    def read(store: Store) -> dict[str, Any]:
        before = None
        if cursor is not None:
            last = store.job(cursor) if JOB_ID.fullmatch(cursor) else None
            if last is None or (owner is not None and last.owner != owner):
                raise http_error(422, f"cursor: {cursor[:80]!r} is not a cursor of this listing")
            before = (last.created_at, last.id)
        jobs = store.jobs(owner, limit=limit + 1, before=before)
        page = jobs[:limit]
        progress = store.progress([job.id for job in page])
        return {
            "jobs": [job_object(job, progress[job.id]) for job in page],
            "next_cursor": page[-1].id if len(jobs) > limit else None,
        }

    return await s.reads(read)


@router.get("/{job_id}", response_model=JobOut, responses=READ_ERRORS)
async def get_job(job_id: JobId, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    await _visible_job(s, job_id, caller)
    return await s.reads(view_job, job_id)


@router.get(
    "/{job_id}/events", response_class=StreamingResponse, responses=READ_ERRORS | STREAM_ERRORS
)
async def job_event_stream(job_id: JobId, caller: CallerDep, s: StateDep) -> StreamingResponse:
    """Server-Sent Events: `progress` (job object) on each change, then `report` or `end`.

    Every stream of a job shares one event built per change (service/events.py); open
    streams are capped per owner and in total (429)."""
    await _visible_job(s, job_id, caller)
    release = _admit_stream(s, caller)

    async def view() -> tuple[dict[str, Any], dict[str, Any] | None]:
        return await s.reads(_view_with_report, job_id)

    return StreamingResponse(
        s.hub.job_events(job_id, view, release),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(release),
    )


@router.get("/{job_id}/report", response_model=ReportOut, responses=READ_ERRORS | CONFLICT)
async def get_report(job_id: JobId, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    job = await _visible_job(s, job_id, caller)
    if job.report is None:
        raise http_error(409, f"job {job_id} is {job.state}; a report exists once it succeeded")
    return job.report


@router.get("/{job_id}/series", response_model=SeriesOut, responses=READ_ERRORS)
async def get_series(job_id: JobId, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    """The running val_bpb of each protocol as it was when each batch landed: the chart
    of the dashboard, complete whenever it is opened (running, finished or cancelled)."""
    job = await _visible_job(s, job_id, caller)
    series = await s.reads(lambda store: store.series(job_id))
    return {
        "job": job_id,
        "series": {p: series.get(p, []) for p in job.protocols},
        "windows_total": {p: plan.windows for p, plan in job.plans.items()},
    }


WINDOW_PAGE = 10_000
MAX_WINDOW_PAGE = 100_000
STREAM_PAGE = 2_000
"""Records per chunk of windows.ndjson: a chunk (about 200 KB) is serialised in a read
thread and the next is read only once the client has taken this one (backpressure)."""


@router.get("/{job_id}/windows", response_model=WindowList, responses=READ_ERRORS)
async def get_windows(
    job_id: JobId,
    caller: CallerDep,
    s: StateDep,
    protocol: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=96)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_WINDOW_PAGE)] = WINDOW_PAGE,
) -> dict[str, Any]:
    """One page of stored per-window records, by protocol (in the job's order) then
    window; follow `next_cursor` for the rest, or stream them all from `windows.ndjson`."""
    protocols = _window_protocols(await _visible_job(s, job_id, caller), protocol)
    first, resume_after = parse_cursor(cursor, protocols)

    def read(store: Store) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for i in range(first, len(protocols)):
            after = resume_after if i == first else -1
            page = store.windows_page(job_id, protocols[i], after, limit - len(rows))
            rows += [{"protocol": protocols[i], **asdict(r)} for r in page]
            if len(rows) == limit:
                return {"windows": rows, "next_cursor": f"{protocols[i]}:{rows[-1]['window']}"}
        return {"windows": rows, "next_cursor": None}

    return await s.reads(read)


@router.get(
    "/{job_id}/windows.ndjson",
    response_class=StreamingResponse,
    responses=READ_ERRORS | STREAM_ERRORS,
)
async def stream_windows(
    job_id: JobId,
    caller: CallerDep,
    s: StateDep,
    protocol: Annotated[str | None, Query(max_length=64)] = None,
) -> StreamingResponse:
    """Every stored record as one JSON object a line, read and serialised page by page in
    a read thread; the next page is read only when the client has taken the last one."""
    protocols = _window_protocols(await _visible_job(s, job_id, caller), protocol)
    release = _admit_stream(s, caller)

    def chunk(store: Store, name: str, after: int) -> tuple[str, int | None]:
        page = store.windows_page(job_id, name, after, STREAM_PAGE)
        text = "".join(json.dumps({"protocol": name, **asdict(r)}) + "\n" for r in page)
        return text, page[-1].window if page else None

    async def lines() -> AsyncIterator[str]:
        try:
            for name in protocols:
                after: int | None = -1
                while after is not None:
                    text, after = await s.reads(chunk, name, after)
                    if text:
                        yield text
        finally:
            release()

    return StreamingResponse(
        lines(), media_type="application/x-ndjson", background=BackgroundTask(release)
    )


MAX_OFFSET = 10**9


@router.get("/{job_id}/shards", response_model=ShardList, responses=READ_ERRORS)
async def get_shards(
    job_id: JobId,
    caller: CallerDep,
    s: StateDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
) -> dict[str, Any]:
    """Shards in plan order, a page at a time (a job object lists only the first ones)."""
    await _visible_job(s, job_id, caller)
    shards = await s.reads(lambda store: store.shards(job_id, limit=limit + 1, offset=offset))
    more = len(shards) > limit
    return {
        "shards": [asdict(r) for r in shards[:limit]],
        "next_offset": offset + limit if more else None,
    }


def _window_protocols(job: JobRow, protocol: str | None) -> tuple[str, ...]:
    if protocol is not None and protocol not in job.protocols:
        raise http_error(422, f"protocol: job {job.id} has no protocol {protocol[:64]!r}")
    return (protocol,) if protocol is not None else job.protocols


WINDOW_INDEX = re.compile(r"[0-9]{1,18}", re.ASCII)
"""A cursor's window: ASCII digits only (`isdigit` takes '²'), below 2⁶³ (SQLite's int)."""


def parse_cursor(cursor: str | None, protocols: tuple[str, ...]) -> tuple[int, int]:
    """(index of the protocol to resume in, last window returned); (0, -1) to start.
    A cursor is `protocol:window` exactly as a page handed it out; anything else is 422."""
    if cursor is None:
        return 0, -1
    name, _, window = cursor.rpartition(":")
    if name not in protocols or not WINDOW_INDEX.fullmatch(window):
        raise http_error(422, f"cursor: {cursor[:80]!r} is not a cursor of this listing")
    return protocols.index(name), int(window)


@router.delete("/{job_id}", response_model=JobOut, responses=READ_ERRORS | CONFLICT)
async def cancel_job(job_id: JobId, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    await _visible_job(s, job_id, caller)
    cancelled = await run_in_threadpool(
        s.store.set_job_state, job_id, "cancelled", only_from=ACTIVE
    )
    if not cancelled:
        state = (await _visible_job(s, job_id, caller)).state
        raise http_error(409, f"job {job_id} is {state}; only active jobs can be cancelled")
    s.scheduler.stop_job(job_id)
    s.hub.publish(job_id)
    return await s.reads(view_job, job_id)


async def _visible_job(s: AppState, job_id: str, caller: Caller) -> JobRow:
    """The job if the caller may see it; 404 alike for unknown and other owners' jobs."""
    job = await s.reads(lambda store: store.job(job_id))
    if job is None or not caller.can_see(job.owner):
        raise http_error(404, f"job {job_id} not found")
    return job


def _admit_stream(s: AppState, caller: Caller) -> Callable[[], None]:
    try:
        return s.hub.admit(caller.owner)
    except StreamLimit as e:
        raise http_error(429, str(e)) from None


def view_job(store: Store, job_id: str) -> dict[str, Any]:
    """The job object with its first shards (run in a read thread)."""
    job = store.job(job_id)
    assert job is not None
    listed = store.shards(job.id, limit=MAX_LISTED_SHARDS)
    return job_object(job, store.progress([job.id])[job.id], listed)


def _view_with_report(store: Store, job_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    job = store.job(job_id)
    assert job is not None
    listed = store.shards(job.id, limit=MAX_LISTED_SHARDS)
    return job_object(job, store.progress([job.id])[job.id], listed), job.report
