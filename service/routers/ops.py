"""Liveness and Prometheus metrics; both open, for load balancers and scrapers."""

from __future__ import annotations

import ray
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import StateDep
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz(s: StateDep) -> Health:
    """Touches no database page: `db` is the last periodic quick check (service/health.py)."""
    db = s.health.error is None
    up = ray.is_initialized()
    return Health(
        ok=db and up,
        workers=s.pool.ready,
        ray=up,
        db=db,
        db_error=s.health.error,
        db_checked_at=s.health.checked_at,
    )


@router.get("/metrics", response_class=Response)
async def metrics(s: StateDep) -> Response:
    text = await s.reads(s.metrics.render)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
