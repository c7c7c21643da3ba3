"""`create_app(settings)`: the FastAPI app; its lifespan owns Ray, the store and the scheduler."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import ray
from fastapi import FastAPI

from golf import __version__
from service.auth import ApiKeys
from service.datasets import Datasets
from service.deps import AppState
from service.errors import install_handlers
from service.events import Hub
from service.limits import RequestLimits
from service.metrics import Metrics
from service.objects import ObjectCache
from service.routers import artifacts, dashboard, datasets, jobs, leaderboard, ops, reviews
from service.scheduler import Scheduler
from service.settings import Settings
from service.store import Store
from workers.pool import WorkerPool

log = logging.getLogger(__name__)


def load_keys(settings: Settings) -> ApiKeys:
    if settings.api_keys is not None:
        return ApiKeys.load(settings.api_keys)
    return ApiKeys.development(settings.state_dir)


def make_pool(settings: Settings) -> WorkerPool:
    """One actor per GPU of the Ray cluster by default; one CPU actor when it has none."""
    cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
    gpus = settings.worker_gpus if settings.worker_gpus is not None else min(cluster_gpus, 1)
    size = settings.workers or (max(1, int(cluster_gpus / gpus)) if gpus else 1)
    threads = settings.worker_threads or max(1, (os.cpu_count() or 1) // size)
    return WorkerPool(
        size,
        gpus=gpus,
        cpus=settings.worker_cpus,
        threads=threads,
        cache_size=settings.worker_cache,
        scorer=settings.worker_scorer,
    )


def create_app(settings: Settings, keys: ApiKeys | None = None) -> FastAPI:
    """The service; joins the Ray session already initialised in this process if any."""
    keys = keys or load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_ray = not ray.is_initialized()
        if owns_ray:
            # ray.init replaces SIGTERM's handler with sys.exit; keep the server's, so
            # that a stopped service shuts down cleanly instead of dying mid-request.
            server_sigterm = signal.getsignal(signal.SIGTERM)
            ray.init(address=settings.ray_address, include_dashboard=False)
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, server_sigterm)
        store = Store(settings.db_path)
        hub, metrics, pool = Hub(), Metrics(), make_pool(settings)
        data = Datasets(settings.data_root)
        scheduler = Scheduler(
            store,
            pool,
            data,
            ObjectCache(settings.artifacts_dir),
            hub,
            metrics,
            settings.max_decompressed_bytes,
            settings.max_shard_attempts,
        )
        app.state.golf = AppState(
            settings, keys, store, data, hub, metrics, pool, scheduler, asyncio.Semaphore(2)
        )
        await scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()
            pool.shutdown()
            store.close()
            if owns_ray:
                ray.shutdown()

    app = FastAPI(
        title="golf-eval",
        version=__version__,
        summary="Exact, reproducible val_bpb of Parameter Golf artifacts.",
        lifespan=lifespan,
    )
    install_handlers(app)
    app.add_middleware(
        RequestLimits,
        keys=keys,
        max_json_bytes=settings.max_json_bytes,
        json_deadline_s=settings.json_deadline_s,
        upload_deadline_s=settings.upload_deadline_s,
    )
    for module in (artifacts, datasets, jobs, leaderboard, ops, reviews, dashboard):
        app.include_router(module.router)
    app.mount("/static", dashboard.static, name="static")
    return app
