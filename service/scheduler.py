"""The engine loop: dispatch planned shards fairly, persist their records, finalize jobs.

Everything it knows is in the store, so it can stop at any point: a restart requeues
the shards that were running and carries on. Shards are dispatched round-robin over
the owners that have work waiting, then by priority, then by age; each worker runs one
shard at a time and streams its batches back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError

from golf import __version__
from golf.engine.evaluate import WindowRecord
from service.chains import ChainCheckpoints
from service.datasets import Datasets
from service.errors import one_line, public, worker_death
from service.events import Hub
from service.metrics import Metrics
from service.objects import ObjectCache
from service.reads import ReadPool
from service.reports import build_report
from service.results import Results, job_snapshot
from service.store import QueuedShard, ShardKey, Store
from workers.gang import Gang
from workers.pool import Worker, WorkerPool
from workers.task import Blob, ChainTask, ShardTask

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
        reads: ReadPool | None = None,
        results: Results | None = None,
        chains: ChainCheckpoints | None = None,
        chain_every: int = 0,
        chain_every_s: float = 300.0,
    ):
        self.store = store
        self.pool = pool
        self.datasets = datasets
        self.objects = objects
        self.hub = hub
        self.metrics = metrics
        self.max_decompressed = max_decompressed
        self.max_attempts = max_attempts
        self.reads = reads or ReadPool(store.path, threads=1, record_key=store.record_key)
        self.results = results
        self.chains = chains
        self.chain_every = chain_every
        self.chain_every_s = chain_every_s
        self._wake = asyncio.Event()
        self._engine: asyncio.Task | None = None
        self._running: dict[ShardKey, asyncio.Task] = {}
        self._workers: dict[ShardKey, list[Worker]] = {}  # a chain's gang: several
        self._streams: dict[ShardKey, Any] = {}  # each running shard's batch stream
        self._gangs: dict[ShardKey, Gang] = {}  # each running chain's gang
        self._stopped_jobs: set[str] = set()
        self._last_owner: str | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Requeue what a previous process left running, then run the engine loop."""
        requeued = self.store.requeue_interrupted()
        if requeued:
            log.info("resuming: %d interrupted shards requeued", requeued)
        self._engine = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self._closing = True
        tasks = [t for t in (self._engine, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    def stop_job(self, job_id: str, interrupt: bool = True) -> None:
        """Stop a cancelled or failed job now.

        With `interrupt` (a cancel) its running batches are interrupted by killing their
        actors, so the GPU is free within seconds instead of after the batch in flight;
        each killed slot stays busy until a fresh actor answers in its place (`_run`), so
        no other owner's shard is ever sent to a dead actor. Without (a failed job: the
        workers are healthy) each shard's stream is cancelled: its actor finishes the batch
        in flight, runs no other, and stays."""
        self._stopped_jobs.add(job_id)
        for key, workers in list(self._workers.items()):
            if key.job != job_id:
                continue
            if interrupt:
                for worker in workers:
                    self.pool.kill(worker)
            elif (gang := self._gangs.get(key)) is not None:
                gang.cancel()
            elif (stream := self._streams.get(key)) is not None:
                with contextlib.suppress(RayError):
                    ray.cancel(stream)
        if self.chains is not None:
            self.chains.drop(job_id)
        self.wake()

    def _report(self, store: Store, job_id: str, environment: dict[str, Any]) -> dict[str, Any]:
        """build_report, naming what the job's dataset counts bytes with (in a read thread)."""
        job = store.job(job_id)
        dataset = self.datasets.get(job.dataset) if job is not None else None
        source = dataset.byte_source if dataset is not None else "sentencepiece-luts"
        return build_report(store, job_id, environment, source)

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
        """Give queued shards to idle workers, in the fair order. A chain takes its whole
        gang at once: while the next shard is a chain with too few idle workers, nothing
        else is dispatched, so the workers that come free go to it (it never holds part of
        its gang, and it is not starved by a stream of small shards)."""
        while self.pool.idle() is not None:
            shard = self.store.next_shard(self._last_owner)
            if shard is None:
                return
            idle = self.pool.idle_workers()
            gang = self._gang_size(shard)
            if len(idle) < gang:
                return
            workers = idle[: max(gang, 1)]
            self._last_owner = shard.owner
            for worker in workers:
                worker.busy = True
            names = "+".join(worker.name for worker in workers)
            self.store.start_shard(shard.key, shard.owner, names)
            self.hub.publish(shard.key.job)
            self._workers[shard.key] = workers
            self._running[shard.key] = asyncio.create_task(self._run(workers, shard, gang > 0))

    def _gang_size(self, shard: QueuedShard) -> int:
        """Workers the shard runs on at once: a chain's gang, else 0 (any one worker)."""
        job = self.store.job(shard.key.job)
        plan = job.plans.get(shard.key.protocol) if job is not None else None
        return plan.chain_workers if plan is not None else 0

    async def _run(self, workers: list[Worker], shard: QueuedShard, chain: bool) -> None:
        """Run one shard on its worker (a chain: on its gang), persisting each batch as it
        arrives.

        However it ends, the shard leaves `stopping` (a failed or cancelled job's shards
        stop counting against the owner's budget) and the slots are idle again only with
        live actors: one that died or that the service killed is replaced first. A gang
        that lost a member is replaced whole: its survivors' process group is broken."""
        key = shard.key
        started = time.monotonic()
        died = False
        worker = workers[0]
        try:
            if chain:
                await self._chain(workers, shard)
            else:
                task = await asyncio.to_thread(self._task, shard)
                await self._stream(worker, task, key)
        except RayActorError as e:
            died = True
            self._workers.pop(key, None)
            if key.job not in self._stopped_jobs:
                # A death the service caused (it killed the actor) is not the shard's fault.
                doomed = any(w.doomed for w in workers)
                log.warning("%s died under %s: %s", worker.name, key, one_line(e))
                self._lost(worker, shard, worker_death(e), counts=not doomed)
        except Exception as e:
            # The task failed, not the actor (an integrity error, settings the worker cannot
            # run): the worker stays, and the job's other shards stop after their batch.
            self._workers.pop(key, None)
            if key.job in self._stopped_jobs:
                log.info("%s of a stopped job ended: %s", key, one_line(e))
            else:
                log.exception("%s failed", key)
                self._fail(key.job, public(one_line(e)))
        finally:
            for w in workers:
                self.metrics.worker_busy(w.name, time.monotonic() - started)
            self._workers.pop(key, None)
            self._running.pop(key, None)
            self.store.end_stopped_shard(key)
            if not self._closing:
                gone = workers if died else [w for w in workers if w.doomed]
                await asyncio.gather(*(self._replace(w) for w in gone))
            for w in workers:
                w.busy = False
            self.hub.publish(key.job)
            self.wake()

    async def _replace(self, worker: Worker) -> None:
        """A fresh actor in the worker's slot, retried with backoff until one answers (the
        slot stays busy meanwhile, so no shard is lost to a dead actor)."""
        delay = 0.5
        while True:
            try:
                await self.pool.replace(worker)
                return
            except Exception as e:
                log.warning("replacing %s failed (%s); retrying in %.1f s", worker.name, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _stream(self, worker: Worker, task: ShardTask, key: ShardKey) -> None:
        stream = self._streams[key] = worker.actor.run_shard.remote(task)
        try:
            await self._consume(stream, task, key)
        finally:
            self._streams.pop(key, None)

    async def _consume(self, stream: Any, task: ShardTask, key: ShardKey) -> None:
        seconds = 0.0
        engine: dict[str, Any] | None = None
        digest: str | None = None
        audit: dict[str, Any] | None = None
        async for ref in stream:
            if key.job in self._stopped_jobs:
                await _abandon(stream)
                self.store.end_stopped_shard(key)
                return
            batch = await ref
            seconds += batch["seconds"]
            engine = batch.get("engine") or engine
            digest = batch.get("digest", digest)
            audit = batch.get("audit") or audit
            self._persist(key, batch["records"])
        if key.job in self._stopped_jobs:  # its stream was cancelled before a batch came
            self.store.end_stopped_shard(key)
            return
        self.store.finish_shard(key, seconds, engine, digest, audit)

    def _persist(self, key: ShardKey, rows: list[dict[str, Any]]) -> None:
        """Store a batch's records (each once), extend the running series, tell watchers."""
        added = self.store.add_windows(
            key,
            [WindowRecord(r["window"], r["nll_sum"], r["tokens"], r["bytes"]) for r in rows],
            [r["checksum"] for r in rows],
        )
        self.metrics.windows_done(added)
        if added:  # the running val_bpb series the dashboard draws (GET …/series)
            self.store.add_series_point(key.job, key.protocol)
        self.hub.publish(key.job)

    async def _chain(self, workers: list[Worker], shard: QueuedShard) -> None:
        """Run a chain on its gang: rank 0's steps persisted as they come, its checkpoints
        kept (service/chains.py); a re-run resumes from the latest one. A step re-run after
        a resume stores nothing new: its records are the ones already kept, to the bit."""
        key = shard.key
        task = await asyncio.to_thread(self._chain_task, shard)
        attempt = self.store.shard_attempts(key)
        gang = Gang([w.actor for w in workers], f"{key.job}.{key.protocol}.{key.shard}.{attempt}")
        self._gangs[key] = gang
        seconds = 0.0
        engine: dict[str, Any] | None = None
        digest: str | None = None
        audit: dict[str, Any] | None = None
        resumed = task.resume is not None
        try:
            async for step in gang.stream(task):
                if key.job in self._stopped_jobs:
                    gang.cancel()
                    self.store.end_stopped_shard(key)
                    return
                seconds += step["seconds"]
                engine = step.get("engine") or engine
                digest = step.get("digest", digest)
                audit = step.get("audit") or audit
                self._persist(key, step["records"])
                saved = None
                if step.get("checkpoint") is not None and self.chains is not None:
                    await asyncio.to_thread(self.chains.save, key, step["checkpoint"])
                    saved = step["step"] + 1
                self.store.chain_step(
                    key, step["step"] + 1, saved, step["step"] if resumed else None
                )
                resumed = False
                self.hub.publish(key.job)
        finally:
            self._gangs.pop(key, None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(gang.close), timeout=10)
        if key.job in self._stopped_jobs:
            self.store.end_stopped_shard(key)
            return
        self.store.finish_shard(key, seconds, engine, digest, audit)

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
            byte_lut=self.objects.byte_counter(dataset, artifact.vocab_size),
            record_key=self.store.record_key or b"",
        )

    def _chain_task(self, shard: QueuedShard) -> ChainTask:
        """A chain's inputs as a shard's, with the checkpoint cadence and, after a lost
        worker or a restart, the latest checkpoint to resume from."""
        task = self._task(shard)
        saved = self.chains.latest(shard.key) if self.chains is not None else None
        resume = None
        if saved is not None:
            resume = Blob(hashlib.sha256(saved).hexdigest(), ray.put(saved))
        return ChainTask(
            job=task.job,
            protocol=task.protocol,
            shard=task.shard,
            params=task.params,
            artifact=task.artifact,
            max_decompressed=task.max_decompressed,
            tokens=task.tokens,
            byte_lut=task.byte_lut,
            record_key=task.record_key,
            every=self.chain_every,
            every_s=self.chain_every_s,
            resume=resume,
        )

    async def _finalize(self) -> None:
        """Check and report every job whose shards are all done. The report and the job's
        window records are written as a content-addressed file (service/results.py), and
        only then does the database mark the job succeeded and fold its WAL in."""
        for job_id in await self.reads(lambda store: store.finished_jobs()):
            try:
                report = await self.reads(self._report, job_id, self.environment())
                if self.results is not None:
                    snapshot = await self.reads(job_snapshot, job_id, report)
                    await asyncio.to_thread(self.results.save, job_id, snapshot)
                if self.store.succeed_job(job_id, report):
                    await asyncio.to_thread(self.store.checkpoint)
                    if self.chains is not None:
                        self.chains.drop(job_id)
                elif self.results is not None:  # cancelled meanwhile: no result to keep
                    self.results.forget(job_id)
            except Exception as e:
                log.exception("finalizing %s failed", job_id)
                self._fail(job_id, public(one_line(e)))
            self.hub.publish(job_id)

    def _lost(self, worker: Worker, shard: QueuedShard, cause: str, counts: bool = True) -> None:
        """A worker died under a shard: run it again, unless it has killed
        `max_attempts` workers already (out of memory, say): then the job fails naming it.
        A death that does not count (the service killed the actor) gives the attempt back."""
        key = shard.key
        if not counts:
            log.info("%s was stopped by the service under %s; requeued", worker.name, key)
            self.store.requeue_shard(key, refund=True)
            return
        attempts = self.store.shard_attempts(key)
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
            self.stop_job(job_id, interrupt=False)


async def _abandon(stream: Any) -> None:
    """Cancel a shard's remaining batches and wait for the worker to let go of it."""
    with contextlib.suppress(RayError):
        ray.cancel(stream)
    with contextlib.suppress(RayError):
        async for _ in stream:
            pass
