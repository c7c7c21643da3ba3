"""The leaderboard (seed groups ranked by mean, service/boards.py) and publishing a job to
the shared board every owner sees."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.auth import CallerDep
from service.boards import board_rows
from service.deps import StateDep
from service.errors import http_error
from service.openapi import BODY, CONFLICT, INVALID, NOT_FOUND, READ_ERRORS, UNAUTHORIZED
from service.schemas import Leaderboard, PublishIn, PublishOut
from service.store import JobRow

router = APIRouter(prefix="/v1/leaderboard", tags=["leaderboard"])


@router.get("", response_model=Leaderboard, responses=READ_ERRORS)
async def leaderboard(
    dataset: str,
    caller: CallerDep,
    s: StateDep,
    protocol: str | None = None,
    board: Literal["mine", "shared"] = "mine",
    include_partial: bool = False,
) -> dict[str, Any]:
    """Seed groups on `dataset` ranked by mean val_bpb per protocol (or `protocol` only).

    `board=mine`: the caller's succeeded jobs (an admin's: everyone's); `board=shared`:
    every owner's published jobs (POST /v1/jobs/{id}/publish). Partial runs are left off
    unless `include_partial`, and then marked `partial`. An unknown dataset is a 404.
    """
    if s.datasets.get(dataset) is None:
        served = ", ".join(d.name for d in s.datasets.all()) or "none"
        raise http_error(404, f"unknown dataset {dataset!r}; the server serves: {served}")

    def read() -> list[dict[str, Any]]:
        if board == "shared":
            jobs = s.store.published_jobs(dataset)
        else:
            jobs = s.store.leaderboard_jobs(dataset, None if caller.admin else caller.owner)
        declared = s.store.board_info([j.id for j in jobs])
        summaries: dict[str, int] = {}

        def code_bytes(job: JobRow) -> int:
            own = (declared.get(job.id) or {}).get("code_bytes")
            if own is not None:
                return int(own)
            if job.artifact not in summaries:
                summary = s.store.artifact(job.artifact)
                summaries[job.artifact] = summary.code_bytes if summary else 0
            return summaries[job.artifact]

        return board_rows(jobs, code_bytes, protocol, include_partial)

    rows = await run_in_threadpool(read)
    return {"dataset": dataset, "board": board, "rows": rows}


publish_router = APIRouter(prefix="/v1/jobs", tags=["leaderboard"])


@publish_router.post(
    "/{job_id}/publish",
    response_model=PublishOut,
    responses=UNAUTHORIZED | NOT_FOUND | INVALID | BODY | CONFLICT,
)
async def publish(job_id: str, body: PublishIn, caller: CallerDep, s: StateDep) -> dict[str, Any]:
    """Put a succeeded job of yours on the shared board (`published: false` takes it off)."""
    job = s.store.job(job_id)
    if job is None or not caller.can_see(job.owner):
        raise http_error(404, f"job {job_id} not found")
    if body.published and job.state != "succeeded":
        raise http_error(409, f"job {job_id} is {job.state}; only a succeeded job is published")
    s.store.set_published(job_id, body.published)
    return {"job": job_id, "published": body.published}
