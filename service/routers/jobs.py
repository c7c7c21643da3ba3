"""Jobs: submit, inspect, follow (SSE), read the report and windows, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from golf.jobplan import JobPlan, plan_job
from golf.params import EvalParams
from service.auth import Caller, CallerDep
from service.deps import AppState, StateDep
from service.errors import http_error
from service.events import job_events
from service.schemas import JobCreate, JobList, JobOut, ReportOut, WindowList, job_object
from service.store import ACTIVE, JobRow, OverCapacity

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=JobOut)
async def submit_job(body: JobCreate, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    artifact = s.store.artifact(body.artifact)
    if artifact is None:
        raise http_error(404, f"unknown artifact {body.artifact}; upload it first")
    dataset = s.datasets.get(body.dataset)
    if dataset is None:
        raise http_error(404, f"unknown dataset {body.dataset!r}; see GET /v1/datasets")
    params = EvalParams.parse(body.params)

    def prepare() -> tuple[JobPlan, str]:
        dataset.check_compatible(artifact.tokenizer_sha256, artifact.vocab_size)
        n_tokens = dataset.val_tokens(params.seq_len).size
        plan = plan_job(n_tokens, body.protocols, params, s.settings.batches_per_shard)
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
        )
    except OverCapacity as e:
        raise http_error(429, str(e)) from None
    s.scheduler.wake()
    return _job_object(s, _visible_job(s, job_id, caller))


@router.get("", response_model=JobList)
async def list_jobs(caller: CallerDep, s: StateDep) -> dict[str, Any]:
    """The caller's jobs (an admin's: everyone's), newest first, without shards."""
    jobs = s.store.jobs(None if caller.admin else caller.owner)
    return {"jobs": [_job_object(s, job) for job in jobs]}


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


@router.get("/{job_id}/windows", response_model=WindowList)
async def get_windows(
    job_id: str, caller: CallerDep, s: StateDep, protocol: str | None = None
) -> dict[str, Any]:
    """Stored per-window records, by protocol (in the job's order) then window."""
    job = _visible_job(s, job_id, caller)
    if protocol is not None and protocol not in job.protocols:
        raise http_error(422, f"protocol: job {job_id} has no protocol {protocol!r}")
    protocols = [protocol] if protocol is not None else job.protocols

    def read() -> list[dict[str, Any]]:
        return [
            {
                "protocol": p,
                "window": r.window,
                "nll_sum": r.nll_sum,
                "tokens": r.tokens,
                "bytes": r.bytes,
            }
            for p in protocols
            for r in s.store.windows(job_id, p)
        ]

    return {"windows": await run_in_threadpool(read)}


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


def _job_object(s: AppState, job: JobRow) -> dict[str, Any]:
    return job_object(job, s.store.shards(job.id))
