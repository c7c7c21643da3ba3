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
from service import ray_processes
from service.auth import ApiKeys
from service.chains import ChainCheckpoints
from service.datasets import Datasets
from service.deps import AppState
from service.errors import install_handlers
from service.events import Hub
from service.health import DbHealth
from service.limits import RequestLimits
from service.metrics import Metrics
from service.objects import ObjectCache
from service.openapi import document_errors
from service.reads import ReadPool
from service.results import Results
from service.routers import artifacts, dashboard, datasets, jobs, leaderboard, ops, reviews
from service.scheduler import Scheduler
from service.settings import Settings
from service.store import Store
from workers.integrity import load_record_key
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


async def _record_ray_processes(settings: Settings, every_s: float = 10.0) -> None:
    """Keep STATE_DIR/ray-processes.json current (actors start and are replaced later)."""
    while True:
        try:
            await asyncio.to_thread(ray_processes.record, settings.state_dir)
        except OSError as e:
            log.warning("cannot record the Ray processes: %s", e)
        await asyncio.sleep(every_s)


def create_app(settings: Settings, keys: ApiKeys | None = None) -> FastAPI:
    """The service; joins the Ray session already initialised in this process if any."""
    keys = keys or load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owns_ray = not ray.is_initialized()
        embedded = owns_ray and settings.ray_address is None
        watch: asyncio.Task | None = None
        if owns_ray:
            if embedded:  # what a killed predecessor's embedded Ray left running
                settings.state_dir.mkdir(parents=True, exist_ok=True)
                ray_processes.clean_up(settings.state_dir)
            # ray.init replaces SIGTERM's handler with sys.exit; keep the server's, so
            # that a stopped service shuts down cleanly instead of dying mid-request.
            server_sigterm = signal.getsignal(signal.SIGTERM)
            ray.init(address=settings.ray_address, include_dashboard=False)
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, server_sigterm)
            if embedded:
                watch = asyncio.create_task(_record_ray_processes(settings))
        record_key = load_record_key(settings.record_key_path)
        store = Store(settings.db_path, record_key=record_key)
        results = Results(settings.results_dir)
        results.reconcile(store)
        reads = ReadPool(settings.db_path, settings.read_threads, record_key)
        health = DbHealth(reads, settings.quick_check_s)
        hub = Hub(settings.max_streams, settings.max_streams_per_owner)
        metrics, pool = Metrics(), make_pool(settings)
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
            reads=reads,
            results=results,
            chains=ChainCheckpoints(settings.chains_dir),
            chain_every=settings.chain_every,
            chain_every_s=settings.chain_every_s,
        )
        app.state.golf = AppState(
            settings,
            keys,
            store,
            data,
            hub,
            metrics,
            pool,
            scheduler,
            asyncio.Semaphore(2),
            reads,
            health,
        )
        health.start()
        await scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()
            await health.stop()
            pool.shutdown()
            reads.close()
            store.close()
            if watch is not None:
                watch.cancel()
            if owns_ray:
                ray.shutdown()
            if embedded:
                (settings.state_dir / ray_processes.RECORD).unlink(missing_ok=True)

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
    app.include_router(leaderboard.publish_router)
    app.mount("/static", dashboard.static, name="static")
    document_errors(app)
    return app
