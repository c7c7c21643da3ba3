"""The evaluation engine: whole batches of a protocol's plan in, per-window records out.

A batch's result depends only on its windows and per-window sums are exactly rounded
(`math.fsum`), so any split of the batches into shards, run anywhere, sums to the same
bits. The CLI runs all batches; a worker runs the range of its shard.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from golf.data.bytes import ByteLUT, SidecarBytes, bits_per_byte
from golf.engine.engine import EngineModel, prepare
from golf.protocols.base import Batch, Protocol, Scorer
from golf.protocols.scored import Scored
from golf.protocols.stream import StreamProtocol
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import WindowPlan
from golf.spec.registry import get_protocol


@dataclass(frozen=True)
class WindowRecord:
    """One window's contribution: Σ NLL (nats) over its scored targets, their count and bytes."""

    window: int
    nll_sum: float
    tokens: int
    bytes: int


Progress = Callable[[int, list[WindowRecord]], None]
"""Called after each batch with its index and its records."""


def evaluate(
    model: Scorer,
    tokens: Tensor | np.ndarray,
    byte_lut: ByteLUT | SidecarBytes,
    protocol: Protocol | str,
    params: EvalParams,
    batches: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> list[WindowRecord]:
    """Per-window records of `batches` (default: all) of the protocol's plan over `tokens`.

    `tokens` are the N + 1 validation tokens; `byte_lut` counts the bytes of each target.
    `model` runs under the engine `params` ask for (`golf.engine.prepare`) unless it is
    already an `EngineModel`.
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    model = prepare(model, params)
    tokens = device_tokens(tokens, model)
    if isinstance(protocol, StreamProtocol):
        if batches is not None and not protocol.shardable(params):
            raise ConfigError(f"protocol {protocol.name!r} runs whole, not by batch")
        return stream_records(model, tokens, byte_lut, protocol, params, progress, batches)
    plan = protocol.plan(tokens.numel() - 1, params)
    n_batches = plan.n_batches(params.batch_windows)
    batches = range(n_batches) if batches is None else batches
    records: list[WindowRecord] = []
    for k in batches:
        batch, nll = batch_nll(model, tokens, plan, protocol, params, k)
        batch_records = window_records(batch, nll, byte_lut)
        records.extend(batch_records)
        if progress is not None:
            progress(k, batch_records)
    return records


def stream_records(
    model: Scorer,
    tokens: Tensor,
    byte_lut: ByteLUT | SidecarBytes,
    protocol: StreamProtocol,
    params: EvalParams,
    progress: Progress | None = None,
    batches: Sequence[int] | None = None,
) -> list[WindowRecord]:
    """A stream protocol's units as per-window records, in the order they were scored
    (`batches`: only those steps, for protocols whose steps stand alone)."""
    host = tokens.cpu().numpy()

    def records(units: list[Scored]) -> list[WindowRecord]:
        return [scored_record(unit, host, byte_lut) for unit in units]

    def step(k: int, units: list[Scored]) -> None:
        if progress is not None:
            progress(k, records(units))

    if batches is None:
        return records(protocol.score(model, tokens, params, step))
    return records(protocol.score(model, tokens, params, step, only=batches))  # type: ignore[call-arg]


def scored_record(
    unit: Scored, tokens: np.ndarray, byte_lut: ByteLUT | SidecarBytes
) -> WindowRecord:
    """One unit's record: exact Σ NLL, target count and bytes of its targets."""
    targets = unit.targets
    n_bytes = int(byte_lut.at_positions(tokens, targets).sum())
    return WindowRecord(unit.unit, math.fsum(unit.nll.tolist()), len(targets), n_bytes)


def batch_nll(
    model: Scorer,
    tokens: Tensor,
    plan: WindowPlan,
    protocol: Protocol,
    params: EvalParams,
    k: int,
) -> tuple[Batch, Tensor]:
    """Batch k of `plan` and its [B, T] per-position NLL (0 where not scored).

    A compiled engine gets static shapes: the batch padded to B windows of L tokens.
    """
    windows = plan.batch(k, params.batch_windows)
    pad = None
    if isinstance(model, EngineModel) and model.engine.compile:
        pad = (params.batch_windows, params.seq_len)
    batch = Batch.from_plan(tokens, plan, windows, pad)
    return batch, protocol.nll(model, batch, params)


def window_records(
    batch: Batch, nll: Tensor, byte_lut: ByteLUT | SidecarBytes
) -> list[WindowRecord]:
    """Sum a batch's per-position NLL and target bytes per window over its scored range.

    Only the scored rows ([B, R]) travel to the host; each window's sum is `math.fsum`
    over the same float64 values, in the same order, as over its full row.
    """
    n = len(batch.windows)  # rows past n pad a static batch
    scored = batch.scored[:n]
    target_bytes = byte_lut.batch_counts(batch.inputs[:n], batch.targets[:n], batch.starts[:n])
    n_bytes = (target_bytes * scored).sum(1)
    rows, _ = batch.row_index()
    nll_rows = nll[:n].gather(1, rows[:n]).double().cpu().numpy()
    if batch.host_lengths is not None and batch.host_score_from is not None:
        lengths, score_from = batch.host_lengths[:n], batch.host_score_from[:n]
    else:
        lengths, score_from = batch.lengths[:n].cpu().numpy(), batch.score_from[:n].cpu().numpy()
    counts = (lengths - score_from).tolist()
    return [
        WindowRecord(window, math.fsum(nll_rows[row, :count]), count, byte_count)
        for row, (window, count, byte_count) in enumerate(
            zip(batch.windows, counts, n_bytes.tolist(), strict=True)
        )
    ]


def summarize(records: Sequence[WindowRecord]) -> dict[str, float | int]:
    """val_bpb and val_loss over records, exactly summed, independent of their order."""
    if not records:
        raise ConfigError("nothing to summarize: no windows were evaluated")
    nll = math.fsum(record.nll_sum for record in records)
    n_tokens = sum(record.tokens for record in records)
    n_bytes = sum(record.bytes for record in records)
    return {
        "val_bpb": bits_per_byte(nll, n_bytes),
        "val_loss": nll / n_tokens,
        "tokens": n_tokens,
        "bytes": n_bytes,
        "windows": len(records),
    }


def device_tokens(tokens: Tensor | np.ndarray, model: Scorer) -> Tensor:
    """The token ids as int64 on the model's device."""
    if not isinstance(tokens, Tensor):
        tokens = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    return tokens.to(device=model.head_weight.device, dtype=torch.long)
