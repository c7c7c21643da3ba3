"""The set of evaluation actors: their slots reserved together, each actor replaced when
it dies.

The slots are the bundles of one placement group, so the pool holds all its GPUs or none
(gang scheduling: a chain run on several workers never waits on part of them) and a
replacement actor lands in the slot its predecessor left. SPREAD puts the bundles on
different nodes where resources allow, so a lost node costs as few workers as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from workers.actor import EvalWorker


@dataclass
class Worker:
    """One actor slot; `name` survives replacement so progress shows a stable worker."""

    name: str
    actor: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    busy: bool = True  # until the actor answered its first call
    known: dict[str, Any] = field(default_factory=dict)
    """The latest `info` any actor of this slot gave (kept while a replacement starts)."""
    doomed: bool = False
    """Set when the service kills the actor (a cancel, a failed job): the slot is not idle
    again until a fresh actor has answered in its place."""


class WorkerPool:
    def __init__(
        self,
        size: int,
        *,
        gpus: float,
        cpus: float,
        threads: int,
        cache_size: int,
        scorer: str = "model",
    ):
        self.bundle: dict[str, float] = {"CPU": cpus} | ({"GPU": gpus} if gpus else {})
        self.options: dict[str, Any] = {"num_cpus": cpus} | ({"num_gpus": gpus} if gpus else {})
        self.group: Any = None  # the placement group, made by start()
        self.threads = threads
        self.cache_size = cache_size
        self.scorer = scorer  # "model", or "synthetic[:rate]": a load-test simulation
        self.workers = [Worker(f"worker-{i}") for i in range(size)]

    async def start(self) -> None:
        """Reserve every slot at once, then start every actor and wait until each answers."""
        self.group = placement_group([self.bundle] * len(self.workers), strategy="SPREAD")
        await self.group.ready()
        await asyncio.gather(*(self._spawn(worker) for worker in self.workers))

    async def replace(self, worker: Worker) -> None:
        """Kill what is left of a worker's actor and start a fresh one in its slot."""
        worker.busy = True
        worker.doomed = True
        with contextlib.suppress(Exception):
            ray.kill(worker.actor, no_restart=True)
        await self._spawn(worker)

    def kill(self, worker: Worker) -> None:
        """Interrupt what the worker runs by killing its actor; the slot stays out of
        `idle()` until `replace` has put a fresh actor in it."""
        worker.doomed = True
        with contextlib.suppress(Exception):
            ray.kill(worker.actor, no_restart=True)

    def idle(self) -> Worker | None:
        return next(iter(self.idle_workers()), None)

    def idle_workers(self) -> list[Worker]:
        """Every slot free for a shard now, in slot order."""
        return [w for w in self.workers if not w.busy and not w.doomed]

    def capabilities(self) -> list[dict[str, Any]]:
        """What each ready actor reported it can run (device, flash attention, Triton)."""
        return [worker.known for worker in self.workers if worker.known]

    @property
    def ready(self) -> int:
        return sum(1 for worker in self.workers if worker.info)

    def shutdown(self) -> None:
        for worker in self.workers:
            if worker.actor is not None:
                with contextlib.suppress(Exception):
                    ray.kill(worker.actor, no_restart=True)
        if self.group is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self.group)

    async def _spawn(self, worker: Worker) -> None:
        worker.info = {}
        slot = PlacementGroupSchedulingStrategy(
            self.group, placement_group_bundle_index=self.workers.index(worker)
        )
        worker.actor = EvalWorker.options(**self.options, scheduling_strategy=slot).remote(
            worker.name, self.threads, self.cache_size, self.scorer
        )
        worker.info = worker.known = await worker.actor.info.remote()
        worker.doomed = False
        worker.busy = False
