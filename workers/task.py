"""What the service sends a worker: one shard, plus its inputs as content-keyed object refs.

The refs sit inside dataclasses, so Ray hands them over unresolved: a worker fetches an
input from the object store only when its cache lacks that key, and never needs the
service's disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from golf.spec.params import EvalParams


@dataclass(frozen=True)
class Blob:
    """An object in the Ray object store, named by the content hash it is cached under."""

    key: str
    ref: Any  # ray.ObjectRef; Any keeps this module importable without starting Ray


@dataclass(frozen=True)
class ShardTask:
    """Batches `[batch_lo, batch_hi)` of one protocol's plan, with resolved parameters."""

    job: str
    protocol: str
    shard: int
    batch_lo: int
    batch_hi: int
    params: EvalParams
    artifact: Blob  # the .golf bytes
    max_decompressed: int
    tokens: Blob  # the N + 1 val tokens (uint16 ndarray) for params.seq_len
    byte_lut: Blob  # ByteLUT sized for the vocabulary, or a CaseOps dataset's SidecarBytes
    record_key: bytes = b""  # keys the window checksums (workers/integrity.py)


@dataclass(frozen=True)
class ChainTask:
    """A whole sequential chain (`ttt`, `ttt-phased`) run by a gang of workers.

    `every`: rank 0 yields a checkpoint (bytes, golf.protocols.chain) after every
    `every`-th chain step (0: not by count); `every_s`: also after the first step that ends
    `every_s` seconds or more after the last checkpoint or the chain's start (0: not by
    time; a full-size checkpoint holds the weights, a buffer per weight and the scores so
    far, so a long chain is checkpointed by time); `resume`: a checkpoint in the object
    store to start from instead of the beginning.
    """

    job: str
    protocol: str
    shard: int
    params: EvalParams
    artifact: Blob
    max_decompressed: int
    tokens: Blob
    byte_lut: Blob
    record_key: bytes
    every: int
    resume: Blob | None = None
    every_s: float = 0.0
