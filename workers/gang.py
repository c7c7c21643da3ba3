"""A gang: several EvalWorker actors running one sequential chain data-parallel.

`ttt` and the phases of `ttt-phased` are chains: step k needs the weights step k − 1
left. Inside a step the work splits (windows by batch, training rows, document batches),
so the gang's actors run the same chain as ranks of one torch.distributed group, the
way Ray Train sets one up: Ray's collective utility (`ray.util.collective`, gloo backend,
rendezvous through Ray's internal KV) joins them, each actor inside its `run_chain`
(`init_collective_group` on the actor side, with the rank and world the gang hands it,
rather than `create_collective_group` from here: that one parks a detached, named info
actor that needs a free CPU to be scheduled, blocks the caller on it and outlives a
crashed driver). Gradients are summed in rank order (golf.protocols.collective), so
every rank takes the same step. Rank 0 streams the records and checkpoints; the other
ranks' streams are drained alongside, and the first failure of any rank ends the gang's
stream with that error. `Gang` is the driver's side (the scheduler's); `join_gang` and
`leave_gang` are what each actor runs inside its chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import ray
import torch.distributed as dist
from ray.util import collective

from golf.protocols.collective import Distributed, Group, Solo
from workers.task import ChainTask


class Gang:
    """`actors` (EvalWorker handles) as ranks 0..n−1 of chains named after `name`."""

    def __init__(self, actors: list[Any], name: str, *, ahead: int | None = None):
        """`ahead`: how many steps a rank may run past what the stream's consumer has
        taken (Ray's generator backpressure; checkpoints wait in the object store until
        taken); None: unbounded."""
        if not actors:
            raise ValueError("a gang needs at least one actor")
        self.actors = list(actors)
        self.name = name
        self.ahead = ahead
        self.group: str | None = None
        self._streams: list[Any] = []

    @property
    def world(self) -> int:
        return len(self.actors)

    async def stream(self, task: ChainTask) -> AsyncIterator[dict[str, Any]]:
        """Run `task` on every rank; yield rank 0's steps in order. Raises the first
        error of any rank (RayActorError when an actor died) as soon as it comes. A
        consumer that stops early calls `cancel()`: the ranks run on otherwise."""
        # A fresh group name per chain: a rendezvous never meets a stale one.
        self.group = f"gang-{self.name}-{secrets.token_hex(4)}"
        options = {} if self.ahead is None else {"_generator_backpressure_num_objects": self.ahead}
        self._streams = [
            actor.run_chain.options(**options).remote(task, rank, self.world, self.group)
            for rank, actor in enumerate(self.actors)
        ]
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(1 if self.ahead else 0)

        async def pump(rank: int, stream: Any) -> None:
            try:
                async for ref in stream:
                    item = await ref
                    if rank == 0:
                        await events.put(("item", item))
                await events.put(("done", rank))
            except Exception as e:  # noqa: BLE001 - handed to the consumer, raised there
                await events.put(("error", e))

        pumps = [asyncio.create_task(pump(r, s)) for r, s in enumerate(self._streams)]
        running = self.world
        try:
            while running:
                kind, value = await events.get()
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    running -= 1
        finally:
            for p in pumps:
                p.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pumps, return_exceptions=True)

    def cancel(self) -> None:
        """Cancel every rank's chain (a rank blocked in a collective ends when its peers
        leave the group; one that does not must be killed)."""
        for stream in self._streams:
            with contextlib.suppress(Exception):
                ray.cancel(stream)

    def close(self) -> None:
        """Make sure every actor has left the gang's group (each leaves by itself when its
        chain ends; this covers a chain cancelled before it started), so the actors can
        join another gang. Asks, does not wait: an actor runs it after its chain."""
        if self.group is None:
            return
        for actor in self.actors:
            with contextlib.suppress(Exception):
                actor.leave_gang.remote(self.group)
        self.group = None
        self._streams = []


def join_gang(rank: int, world: int, group: str, device: str) -> Group:
    """This actor as rank `rank` of the gang `group`: torch.distributed's default group
    joined by Ray's collective utility (gloo, rendezvous through Ray's internal KV), plus
    a NCCL group beside it for the gradients on CUDA. World 1 joins nothing."""
    if world == 1:
        return Solo()
    if dist.is_initialized():  # a chain before this one did not leave: start clean
        dist.destroy_process_group()
    collective.init_collective_group(world, rank, backend="gloo", group_name=group)
    grads = dist.new_group(backend="nccl") if device == "cuda" else None
    return Distributed(grads)


def leave_gang(group: str) -> None:
    """Destroy the gang's group here, and the default process group under it, so this
    actor can join another gang (Ray's destroy leaves the default group standing)."""
    if collective.is_group_initialized(group):
        collective.destroy_collective_group(group)
    if dist.is_initialized():
        dist.destroy_process_group()
