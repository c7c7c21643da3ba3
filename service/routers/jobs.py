"""Jobs: submit, inspect, follow (SSE), read the report and windows, cancel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from golf.spec.jobplan import JobPlan, plan_job
from golf.spec.params import EvalParams
from golf.spec.registry import get_protocol
from service.auth import Caller, CallerDep
from service.costs import check_params, check_plan
from service.deps import AppState, StateDep
from service.errors import http_error
from service.events import job_events
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
from service.store import ACTIVE, JobRow, OverCapacity

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=JobOut)
async def submit_job(body: JobCreate, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    artifact = s.store.artifact(body.artifact, None if caller.admin else caller.owner)
    if artifact is None:
        raise http_error(404, f"unknown artifact {body.artifact}; upload it first")
    dataset = s.datasets.get(body.dataset)
    if dataset is None:
        raise http_error(404, f"unknown dataset {body.dataset!r}; see GET /v1/datasets")
    params = EvalParams.parse(body.params)
    for name in body.protocols:
        get_protocol(name)  # unknown names first, as one line
    check_params(params, body.protocols, s.settings)

    def prepare() -> tuple[JobPlan, str]:
        dataset.check_compatible(artifact.tokenizer_sha256, artifact.vocab_size)
        n_tokens = dataset.val_tokens(params.seq_len).size
        plan = plan_job(n_tokens, body.protocols, params, s.settings.batches_per_shard)
        check_plan(plan, artifact, s.settings)
        return plan, dataset.sha256

    plan, dataset_sha256 = await run_in_threadpool(prepare)
    try:
        job_id = s.store.create_job(
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
    except OverCapacity as e:
        raise http_error(429, str(e)) from None
    s.scheduler.wake()
    return _job_object(s, _visible_job(s, job_id, caller))


@router.get("", response_model=JobList)
async def list_jobs(caller: CallerDep, s: StateDep) -> dict[str, Any]:
    """The caller's jobs (an admin's: everyone's), newest first, without shards."""
    jobs = s.store.jobs(None if caller.admin else caller.owner)
    progress = s.store.progress([job.id for job in jobs])
    return {"jobs": [job_object(job, progress[job.id]) for job in jobs]}


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: str, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    return _job_object(s, _visible_job(s, job_id, caller))


@router.get("/{job_id}/events", response_class=StreamingResponse)
async def job_event_stream(job_id: str, caller: CallerDep, s: StateDep) -> StreamingResponse:
    """Server-Sent Events: `progress` (job object) on each change, then `report` or `end`."""
    _visible_job(s, job_id, caller)

    def view() -> tuple[dict[str, Any], dict[str, Any] | None]:
        job = s.store.job(job_id)
        assert job is not None
        return _job_object(s, job), job.report

    return StreamingResponse(
        job_events(s.hub, job_id, view),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{job_id}/report", response_model=ReportOut)
async def get_report(job_id: str, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    job = _visible_job(s, job_id, caller)
    if job.report is None:
        raise http_error(409, f"job {job_id} is {job.state}; a report exists once it succeeded")
    return job.report


@router.get("/{job_id}/series", response_model=SeriesOut)
async def get_series(job_id: str, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    """The running val_bpb of each protocol as it was when each batch landed: the chart
    of the dashboard, complete whenever it is opened (running, finished or cancelled)."""
    job = _visible_job(s, job_id, caller)
    series = s.store.series(job_id)
    return {
        "job": job_id,
        "series": {p: series.get(p, []) for p in job.protocols},
        "windows_total": {p: plan.windows for p, plan in job.plans.items()},
    }


WINDOW_PAGE = 10_000
MAX_WINDOW_PAGE = 100_000


@router.get("/{job_id}/windows", response_model=WindowList)
async def get_windows(
    job_id: str,
    caller: CallerDep,
    s: StateDep,
    protocol: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_WINDOW_PAGE)] = WINDOW_PAGE,
) -> dict[str, Any]:
    """One page of stored per-window records, by protocol (in the job's order) then
    window; follow `next_cursor` for the rest, or stream them all from `windows.ndjson`."""
    protocols = _window_protocols(_visible_job(s, job_id, caller), protocol)
    first, resume_after = _parse_cursor(cursor, protocols)

    def read() -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for i in range(first, len(protocols)):
            after = resume_after if i == first else -1
            page = s.store.windows_page(job_id, protocols[i], after, limit - len(rows))
            rows += [{"protocol": protocols[i], **asdict(r)} for r in page]
            if len(rows) == limit:
                return {"windows": rows, "next_cursor": f"{protocols[i]}:{rows[-1]['window']}"}
        return {"windows": rows, "next_cursor": None}

    return await run_in_threadpool(read)


@router.get("/{job_id}/windows.ndjson", response_class=StreamingResponse)
async def stream_windows(
    job_id: str, caller: CallerDep, s: StateDep, protocol: str | None = None
) -> StreamingResponse:
    """Every stored record as one JSON object a line, read page by page off the event loop."""
    protocols = _window_protocols(_visible_job(s, job_id, caller), protocol)

    async def lines() -> AsyncIterator[str]:
        for name in protocols:
            after = -1
            while page := await run_in_threadpool(
                s.store.windows_page, job_id, name, after, WINDOW_PAGE
            ):
                yield "".join(json.dumps({"protocol": name, **asdict(r)}) + "\n" for r in page)
                after = page[-1].window

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/{job_id}/shards", response_model=ShardList)
async def get_shards(
    job_id: str,
    caller: CallerDep,
    s: StateDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
) -> dict[str, Any]:
    """Shards in plan order, a page at a time (a job object lists only the first ones)."""
    _visible_job(s, job_id, caller)
    shards = s.store.shards(job_id, limit=limit + 1, offset=offset)
    more = len(shards) > limit
    return {
        "shards": [asdict(r) for r in shards[:limit]],
        "next_offset": offset + limit if more else None,
    }


def _window_protocols(job: JobRow, protocol: str | None) -> tuple[str, ...]:
    if protocol is not None and protocol not in job.protocols:
        raise http_error(422, f"protocol: job {job.id} has no protocol {protocol!r}")
    return (protocol,) if protocol is not None else job.protocols


def _parse_cursor(cursor: str | None, protocols: tuple[str, ...]) -> tuple[int, int]:
    """(index of the protocol to resume in, last window returned); (0, -1) to start."""
    if cursor is None:
        return 0, -1
    name, _, window = cursor.rpartition(":")
    if name not in protocols or not window.isdigit():
        raise http_error(422, f"cursor: {cursor[:80]!r} is not a cursor of this listing")
    return protocols.index(name), int(window)


@router.delete("/{job_id}", response_model=JobOut)
async def cancel_job(job_id: str, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    job = _visible_job(s, job_id, caller)
    if not s.store.set_job_state(job_id, "cancelled", only_from=ACTIVE):
        state = _visible_job(s, job_id, caller).state
        raise http_error(409, f"job {job_id} is {state}; only active jobs can be cancelled")
    s.scheduler.stop_job(job_id)
    s.hub.publish(job_id)
    return _job_object(s, _visible_job(s, job.id, caller))


def _visible_job(s: AppState, job_id: str, caller: Caller) -> JobRow:
    """The job if the caller may see it; 404 alike for unknown and other owners' jobs."""
    job = s.store.job(job_id)
    if job is None or not caller.can_see(job.owner):
        raise http_error(404, f"job {job_id} not found")
    return job


def _job_object(s: AppState, job: JobRow, shards: bool = True) -> dict[str, Any]:
    listed = s.store.shards(job.id, limit=MAX_LISTED_SHARDS) if shards else None
    return job_object(job, s.store.progress([job.id])[job.id], listed)
