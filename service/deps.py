"""The app's shared objects, made once in the lifespan and handed to routes by dependency."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.auth import ApiKeys
from service.datasets import Datasets
from service.events import Hub
from service.health import DbHealth
from service.metrics import Metrics
from service.reads import ReadPool
from service.scheduler import Scheduler
from service.settings import Settings
from service.store import Store
from workers.pool import WorkerPool


@dataclass
class AppState:
    settings: Settings
    keys: ApiKeys
    store: Store
    datasets: Datasets
    hub: Hub
    metrics: Metrics
    pool: WorkerPool
    scheduler: Scheduler
    validations: asyncio.Semaphore
    """Artifacts validated at once: each may inflate up to max_decompressed_bytes."""
    reads: ReadPool
    """Store reads off the event loop, each thread on its own read-only connection."""
    health: DbHealth


def get_state(request: Request) -> AppState:
    return request.app.state.golf


StateDep = Annotated[AppState, Depends(get_state)]
