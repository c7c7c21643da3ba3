"""The engine loop: dispatch planned shards fairly, persist their records, finalize jobs.

Everything it knows is in the store, so it can stop at any point: a restart requeues
the shards that were running and carries on. Shards are dispatched round-robin over
the owners that have work waiting, then by priority, then by age; each worker runs one
shard at a time and streams its batches back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from golf import __version__
from golf.engine.evaluate import WindowRecord
from service.datasets import Datasets
from service.errors import one_line
from service.events import Hub
from service.metrics import Metrics
from service.objects import ObjectCache
from service.reports import build_report
from service.store import QueuedShard, ShardKey, Store
from workers.pool import Worker, WorkerPool
from workers.task import ShardTask

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        store: Store,
        pool: WorkerPool,
        datasets: Datasets,
        objects: ObjectCache,
        hub: Hub,
        metrics: Metrics,
        max_decompressed: int,
        max_attempts: int = 3,
    ):
        self.store = store
        self.pool = pool
        self.datasets = datasets
        self.objects = objects
        self.hub = hub
        self.metrics = metrics
        self.max_decompressed = max_decompressed
        self.max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._engine: asyncio.Task | None = None
        self._running: dict[ShardKey, asyncio.Task] = {}
        self._workers: dict[ShardKey, Worker] = {}
        self._stopped_jobs: set[str] = set()
        self._last_owner: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Requeue what a previous process left running, then run the engine loop."""
        requeued = self.store.requeue_interrupted()
        if requeued:
            log.info("resuming: %d interrupted shards requeued", requeued)
        self._engine = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._engine, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def stop_job(self, job_id: str) -> None:
        """Stop a cancelled or failed job now: its running batches are interrupted by
        killing their actors (a fresh actor takes each one's place), so the GPU is free
        within seconds instead of after the batch in flight."""
        self._stopped_jobs.add(job_id)
        for key, worker in list(self._workers.items()):
            if key.job == job_id:
                with contextlib.suppress(Exception):
                    ray.kill(worker.actor, no_restart=True)
        self.wake()

    def environment(self) -> dict[str, Any]:
        infos = [w.info for w in self.pool.workers if w.info]
        return {
            "device": ",".join(sorted({i["device"] for i in infos})) or "unknown",
            "device_name": ",".join(sorted({i.get("device_name", "") for i in infos})) or "unknown",
            "torch": ",".join(sorted({i["torch"] for i in infos})) or "unknown",
            "workers": len(self.pool.workers),
            "golf_eval": __version__,
        }

    # ------------------------------------------------------------------ engine

    async def _loop(self) -> None:
        try:
            await self.pool.start()
        except Exception:
            log.exception("workers failed to start; jobs stay queued")
            raise
        log.info("%d workers ready: %s", self.pool.ready, self.environment())
        while True:
            self._wake.clear()
            try:
                await self._finalize()
                self._dispatch()
            except Exception:
                log.exception("scheduler step failed; retrying on the next event")
            await self._wake.wait()

    def _dispatch(self) -> None:
        while (worker := self.pool.idle()) is not None:
            shard = self.store.next_shard(self._last_owner)
            if shard is None:
                return
            self._last_owner = shard.owner
            worker.busy = True
            self.store.start_shard(shard.key, shard.owner, worker.name)
            self.hub.publish(shard.key.job)
            self._workers[shard.key] = worker
            self._running[shard.key] = asyncio.create_task(self._run(worker, shard))

    async def _run(self, worker: Worker, shard: QueuedShard) -> None:
        """Run one shard on one worker, persisting each batch as it arrives."""
        key = shard.key
        started = time.monotonic()
        try:
            task = await asyncio.to_thread(self._task, shard)
            await self._stream(worker, task, key)
        except RayActorError as e:
            self._workers.pop(key, None)
            if key.job in self._stopped_jobs:
                self.store.end_stopped_shard(key)
            else:
                self._lost(worker, shard, one_line(e))
            try:
                await self.pool.replace(worker)
            except Exception:
                log.exception("replacing %s failed; retrying on its next shard", worker.name)
        except Exception as e:
            log.exception("%s failed", key)
            self._fail(key.job, one_line(e))
        finally:
            self.metrics.worker_busy(worker.name, time.monotonic() - started)
            self._workers.pop(key, None)
            self._running.pop(key, None)
            worker.busy = False
            self.hub.publish(key.job)
            self.wake()

    async def _stream(self, worker: Worker, task: ShardTask, key: ShardKey) -> None:
        seconds = 0.0
        engine: dict[str, Any] | None = None
        stream = worker.actor.run_shard.remote(task)
        async for ref in stream:
            if key.job in self._stopped_jobs:
                await _abandon(stream)
                self.store.end_stopped_shard(key)
                return
            batch = await ref
            seconds += batch["seconds"]
            engine = batch.get("engine") or engine
            rows = batch["records"]
            added = self.store.add_windows(
                key,
                [WindowRecord(r["window"], r["nll_sum"], r["tokens"], r["bytes"]) for r in rows],
                [r["checksum"] for r in rows],
            )
            self.metrics.windows_done(added)
            if added:  # the running val_bpb series the dashboard draws (GET …/series)
                self.store.add_series_point(key.job, key.protocol)
            self.hub.publish(key.job)
        self.store.finish_shard(key, seconds, engine)

    def _task(self, shard: QueuedShard) -> ShardTask:
        """The shard's inputs as object-store refs (put once per content hash)."""
        job = self.store.job(shard.key.job)
        assert job is not None
        dataset = self.datasets.get(job.dataset)
        if dataset is None or dataset.sha256 != job.dataset_sha256:
            raise RuntimeError(f"dataset {job.dataset} changed or vanished since submission")
        params = job.plans[shard.key.protocol].params
        artifact = self.store.artifact(job.artifact)
        assert artifact is not None
        return ShardTask(
            job=shard.key.job,
            protocol=shard.key.protocol,
            shard=shard.key.shard,
            batch_lo=shard.batch_lo,
            batch_hi=shard.batch_hi,
            params=params,
            artifact=self.objects.artifact(job.artifact),
            max_decompressed=self.max_decompressed,
            tokens=self.objects.tokens(dataset, params.seq_len),
            byte_lut=self.objects.byte_lut(dataset, artifact.vocab_size),
        )

    async def _finalize(self) -> None:
        """Check and report every job whose shards are all done."""
        for job_id in self.store.finished_jobs():
            try:
                report = await asyncio.to_thread(
                    build_report, self.store, job_id, self.environment()
                )
                self.store.succeed_job(job_id, report)
            except Exception as e:
                log.exception("finalizing %s failed", job_id)
                self._fail(job_id, one_line(e))
            self.hub.publish(job_id)

    def _lost(self, worker: Worker, shard: QueuedShard, cause: str) -> None:
        """A worker died under a shard: run it again, unless it has killed
        `max_attempts` workers already (out of memory, say): then the job fails naming it."""
        attempts = self.store.shard_attempts(shard.key)
        key = shard.key
        if attempts >= self.max_attempts:
            self._fail(
                key.job,
                f"shard {key.protocol}#{key.shard} (batches {shard.batch_lo}-{shard.batch_hi}) "
                f"lost its worker {attempts} times; last: {cause}",
            )
            return
        log.warning(
            "%s died running %s (attempt %d): %s; requeued", worker.name, key, attempts, cause
        )
        self.store.requeue_shard(key)

    def _fail(self, job_id: str, message: str) -> None:
        if self.store.fail_job(job_id, message):
            self.stop_job(job_id)


async def _abandon(stream: Any) -> None:
    """Cancel a shard's remaining batches and wait for the worker to let go of it."""
    with contextlib.suppress(RayError):
        ray.cancel(stream)
    with contextlib.suppress(RayError):
        async for _ in stream:
            pass
