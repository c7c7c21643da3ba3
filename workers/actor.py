"""The evaluation actor: one per GPU (or CPU slot), one shard at a time, batches streamed.

Each batch's window records are yielded as soon as they exist (a Ray streaming
generator), so the service persists progress while the shard runs and a crash loses
at most the batch in flight. A chain (`ttt`, `ttt-phased`) runs on several actors at
once, each a rank of one gang (workers/gang.py), its steps streamed the same way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, astuple
from typing import Any

import ray
import torch
from torch import nn

from golf.audit.causality import stream_audit
from golf.engine.engine import Engine, EngineModel
from golf.engine.evaluate import (
    WindowRecord,
    batch_nll,
    device_tokens,
    scored_record,
    stream_records,
    window_records,
)
from golf.formats.artifact import load_model, read_artifact
from golf.models.attention import flash_attn_available
from golf.protocols.chain import chain_bytes, chain_state, checkpoint_cap, due
from golf.protocols.collective import Group
from golf.protocols.slot_kernels import resolve_slot_kernel
from golf.protocols.stream import StreamProtocol
from golf.spec.errors import ConfigError
from golf.spec.registry import get_protocol
from workers.cache import LRU
from workers.gang import join_gang, leave_gang
from workers.integrity import RunningDigest, ShardDigest, record_checksum, shard_digest, verified
from workers.synthetic import synthetic_shard
from workers.task import ChainTask, ShardTask


@ray.remote(max_restarts=0)
class EvalWorker:
    """Keeps models (by artifact sha256) and val tokens (by dataset sha256) loaded."""

    def __init__(self, name: str, threads: int, cache_size: int, scorer: str = "model"):
        self.name = name
        self.scorer = scorer  # "synthetic[:rate]": a load-test SIMULATION (workers/synthetic.py)
        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(threads)
        self.models: LRU[nn.Module] = LRU(cache_size)
        # Prepared for an engine (key: artifact + precision + ...): a bf16 run holds its
        # own copy of the model, loaded once per precision.
        self.engines: LRU[EngineModel] = LRU(cache_size)
        self.last_engine: dict[str, Any] | None = None
        self.tokens: LRU[torch.Tensor] = LRU(cache_size)
        self.luts: LRU[Any] = LRU(cache_size)

    def info(self) -> dict[str, Any]:
        """Who this actor is; the pool awaits it as the actor's readiness check."""
        return {
            "name": self.name,
            "device": self.device,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "pid": os.getpid(),
            "device_name": (torch.cuda.get_device_name() if self.device == "cuda" else self.device),
            "engine": self.last_engine,
            # What the service checks a job's engine settings against at submission.
            "flash_attention": flash_attn_available(),
            "triton": resolve_slot_kernel("auto", torch.device(self.device)) == "triton",
        }

    @ray.method(num_returns="streaming")
    def run_shard(self, task: ShardTask) -> Iterator[dict[str, Any]]:
        """Yield `{"batch", "seconds", "records", "engine", "digest"}` for each batch of the
        shard, in order; `engine` is the `EngineInfo` (JSON) of what ran the batch, `digest`
        the shard digest of the records so far (the last one is the shard's)."""
        if self.scorer != "model":
            yield from synthetic_shard(task, self.scorer)
            return
        raw, model, tokens, byte_lut = self._inputs(task)
        protocol = get_protocol(task.protocol)
        if isinstance(protocol, StreamProtocol):
            yield from self._stream_shard(task, raw, model, tokens, byte_lut, protocol)
            return
        plan = protocol.plan(tokens.numel() - 1, task.params)
        digest = ShardDigest()
        for k in range(task.batch_lo, task.batch_hi):
            started = time.perf_counter()
            batch, nll = batch_nll(model, tokens, plan, protocol, task.params, k)
            records = checked(task, window_records(batch, nll, byte_lut))
            self.last_engine = model.info().model_dump(mode="json")
            yield {
                "batch": k,
                "seconds": time.perf_counter() - started,
                "records": records,
                "engine": self.last_engine,
                "digest": digest.update(r["checksum"] for r in records),
            }

    @ray.method(num_returns="streaming")
    def run_chain(
        self, task: ChainTask, rank: int, world: int, group: str
    ) -> Iterator[dict[str, Any]]:
        """Rank `rank` of `world` of one chain (`ttt`, `ttt-phased`) joined by the gang
        `group` (workers/gang.py). Yields `{"step", "steps", "seconds", "records",
        "engine", "digest", "checkpoint", "audit"}` per chain step; records (with
        checksums), the digest over every record of the chain so far (restored ones
        included, in window order) and the checkpoint (bytes: every `task.every` steps and
        `task.every_s` seconds)
        come from rank 0 only, and with the last step rank 0's causality audit of the
        protocol (golf eval's, on the same prefix). The group is left at the end, however
        the chain ends."""
        if self.scorer != "model":
            raise ConfigError("the synthetic scorer makes up shard records; it runs no chain")
        gang = join_gang(rank, world, group, self.device)
        try:
            yield from self._chain(task, gang)
        finally:
            leave_gang(group)

    def leave_gang(self, group: str) -> None:
        """Leave `group` if this actor is still in it (a chain that never started its
        generator, say); harmless otherwise."""
        leave_gang(group)

    def _chain(self, task: ChainTask, gang: Group) -> Iterator[dict[str, Any]]:
        raw, model, tokens, byte_lut = self._inputs(task)
        protocol = get_protocol(task.protocol)
        chain = getattr(protocol, "chain", None)
        if chain is None:
            raise ConfigError(f"protocol {task.protocol!r} is not a chain")
        resume = None
        if task.resume is not None:
            data = ray.get(task.resume.ref)
            resume = chain_state(data, checkpoint_cap(model.model, tokens.numel()))
        host = tokens.cpu().numpy()
        digest = RunningDigest()
        if resume is not None and gang.rank == 0:
            digest.add(checked(task, [scored_record(u, host, byte_lut) for u in resume.scored]))
        last_saved = time.monotonic()

        def wanted(index: int) -> bool:
            """Whether rank 0 checkpoints after step `index` (asked by warm-start LoRA
            chains on a gang before the step ends: rank 0 gathers every slot's A then)."""
            by_count = task.every > 0 and (index + 1) % task.every == 0
            return by_count or (task.every_s > 0 and time.monotonic() - last_saved >= task.every_s)

        steps = chain(model, tokens, task.params, resume=resume, group=gang, save=wanted)
        while True:
            started = time.perf_counter()
            step = next(steps, None)
            if step is None:
                return
            records: list[dict[str, Any]] = []
            saved = audit = None
            if gang.rank == 0:
                records = checked(task, [scored_record(u, host, byte_lut) for u in step.units])
                digest.add(records)
                timely = task.every_s > 0 and time.monotonic() - last_saved >= task.every_s
                if step.snapshot is not None and (due(step, task.every) or timely):
                    saved = chain_bytes(step.snapshot())
                    last_saved = time.monotonic()
                if step.index == step.steps - 1:
                    audit = stream_audit(raw, host, task.protocol, task.params)
            self.last_engine = model.info().model_dump(mode="json")
            yield {
                "step": step.index,
                "steps": step.steps,
                "seconds": time.perf_counter() - started,
                "records": records,
                "engine": self.last_engine,
                "digest": digest.value() if gang.rank == 0 else None,
                "checkpoint": saved,
                "audit": audit,
            }

    def _inputs(
        self, task: ShardTask | ChainTask
    ) -> tuple[nn.Module, EngineModel, torch.Tensor, Any]:
        """The task's model as loaded and prepared for its engine, val tokens on the device
        and byte counter, from the actor's caches (loaded from the object store on a miss)."""
        raw = self.models.get(
            task.artifact.key,
            lambda: load_model(
                read_artifact(
                    verified(ray.get(task.artifact.ref), task.artifact.key, "artifact"),
                    max_decompressed=task.max_decompressed,
                ),
                self.device,
            ),
        )
        engine = Engine.resolve(task.params, self.device)
        settings = (engine.precision, engine.attention, engine.compile, engine.slot_kernel)
        model = self.engines.get(
            "/".join(map(str, (task.artifact.key, *settings))), lambda: engine.prepare(raw)
        )
        tokens = self.tokens.get(
            task.tokens.key, lambda: device_tokens(ray.get(task.tokens.ref), model)
        )
        byte_lut = self.luts.get(task.byte_lut.key, lambda: ray.get(task.byte_lut.ref))
        return raw, model, tokens, byte_lut

    def _stream_shard(
        self,
        task: ShardTask,
        raw: nn.Module,
        model: EngineModel,
        tokens: torch.Tensor,
        byte_lut: Any,
        protocol: StreamProtocol,
    ) -> Iterator[dict[str, Any]]:
        """A shardable stream protocol (canonical `ttt-lora`) one document batch at a time,
        each exactly as in the whole run (`score(..., only=[k])`). Its records are per
        document, and a batch's documents are not consecutive, so the digest runs over the
        shard's records so far in window order (the order the service checks them in).
        The shard holding the first batch also runs the protocol's causality audit (golf
        eval's, on the same prefix) and sends it with its last batch."""
        if not protocol.shardable(task.params):
            raise ConfigError(f"protocol {task.protocol!r} runs whole, not by batch")
        done: list[dict[str, Any]] = []
        for k in range(task.batch_lo, task.batch_hi):
            started = time.perf_counter()
            units = stream_records(model, tokens, byte_lut, protocol, task.params, batches=[k])
            records = checked(task, units)
            done.extend(records)
            self.last_engine = model.info().model_dump(mode="json")
            audit = None
            if task.batch_lo == 0 and k == task.batch_hi - 1:
                audit = stream_audit(raw, tokens.cpu().numpy(), task.protocol, task.params)
            yield {
                "audit": audit,
                "batch": k,
                "seconds": time.perf_counter() - started,
                "records": records,
                "engine": self.last_engine,
                "digest": shard_digest(
                    r["checksum"] for r in sorted(done, key=lambda r: r["window"])
                ),
            }


def checked(task: ShardTask | ChainTask, records: list[WindowRecord]) -> list[dict[str, Any]]:
    """Records as dicts, each with its checksum under the task's record key."""
    return [
        asdict(r)
        | {"checksum": record_checksum(task.record_key, task.job, task.protocol, *astuple(r))}
        for r in records
    ]
