"""The leaderboard: the best val_bpb per submission per protocol on one dataset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from service.auth import CallerDep
from service.deps import StateDep
from service.schemas import Leaderboard
from service.store import JobRow, Store

router = APIRouter(prefix="/v1/leaderboard", tags=["leaderboard"])


@router.get("", response_model=Leaderboard)
async def leaderboard(
    dataset: str, caller: CallerDep, s: StateDep, protocol: str | None = None
) -> dict[str, Any]:
    """Over the caller's succeeded jobs (an admin's: everyone's) on `dataset`: the best
    val_bpb of each entry (its group if the job was submitted with one, else its
    artifact) under each protocol (or `protocol` only), sorted by protocol then val_bpb.
    Ties go to the job that finished first."""
    jobs = await run_in_threadpool(
        s.store.leaderboard_jobs, dataset, None if caller.admin else caller.owner
    )
    return {"dataset": dataset, "rows": leaderboard_rows(s.store, jobs, protocol)}


def leaderboard_rows(
    store: Store, jobs: list[JobRow], protocol: str | None = None
) -> list[dict[str, Any]]:
    """The rows of `leaderboard` from succeeded jobs ordered by finish time."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    code_bytes: dict[str, int] = {}
    for job in jobs:
        report = job.report or {}
        art = report.get("artifact") or {}
        flags = report.get("flags") or []
        for r in report.get("reports") or []:
            if protocol is not None and r["protocol"] != protocol:
                continue
            key = (r["protocol"], f"group:{job.group}" if job.group else job.artifact)
            if key in best and best[key]["val_bpb"] <= r["val_bpb"]:
                continue
            if job.artifact not in code_bytes:
                summary = store.artifact(job.artifact)
                code_bytes[job.artifact] = summary.code_bytes if summary else 0
            best[key] = {
                "protocol": r["protocol"],
                "val_bpb": r["val_bpb"],
                "val_loss": r["val_loss"],
                "artifact": job.artifact,
                "group": job.group,
                "job": job.id,
                "total_bytes": art.get("total_bytes", 0),
                "code_bytes": code_bytes[job.artifact],
                "verdict": art.get("verdict", "unknown"),
                "flags": [f for f in flags if f.get("protocol") in (None, r["protocol"])],
                "finished_at": job.finished_at,
            }
    return sorted(best.values(), key=lambda row: (row["protocol"], row["val_bpb"]))
