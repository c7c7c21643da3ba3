"""Job planning: each protocol's window plan, resolved, cut into shards of whole batches.

Pure and typed: the service's router calls it to price and store a job, the scheduler
reads the stored result back, and `golf eval` sizes its progress bars with it, so the
windows a job promises are the windows every layer counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import shard_plan
from golf.spec.registry import get_protocol


class ProtocolPlan(BaseModel):
    """One protocol of a job: the params it runs with and the totals its report must match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: str
    params: EvalParams  # resolved: the stride that is used, never None
    windows: int
    scored_tokens: int
    batch_sizes: tuple[int, ...] = ()
    """Records per batch where batches are not `batch_windows` windows: a stream protocol's
    steps in processing order (`ttt-lora`: documents per batch; `ttt`: windows per chunk)."""
    windows_total: int | None = None
    """Windows of the uncut plan (max_windows aside); None in plans stored before."""
    chain_workers: int = 0
    """A chain's gang size (workers that run its steps data-parallel, all at once); 0 for
    protocols cut into independent shards."""

    @property
    def chain(self) -> bool:
        return self.chain_workers > 0

    @property
    def partial(self) -> bool | None:
        """Whether max_windows cut the plan short of the whole val; None if unknown."""
        return None if self.windows_total is None else self.windows < self.windows_total

    @property
    def batches(self) -> int:
        if self.batch_sizes:
            return len(self.batch_sizes)
        return -(-self.windows // self.params.batch_windows)

    def windows_in(self, lo: int, hi: int) -> int:
        """Records of batches `[lo, hi)`."""
        if self.batch_sizes:
            return sum(self.batch_sizes[lo:hi])
        B = self.params.batch_windows
        return min(hi * B, self.windows) - lo * B

    @property
    def cost(self) -> float:
        """Work in forward window-tokens: windows × seq_len × the protocol's cost factor.

        A document-batched protocol's factor is relative to sliding over the same targets
        (TTTLoRA.cost_factor), so it is priced on the scored tokens / stride windows that
        sliding would run."""
        factor = get_protocol(self.protocol).cost_factor(self.params)
        if self.batch_sizes:
            assert self.params.stride is not None  # resolved
            return self.scored_tokens / self.params.stride * self.params.seq_len * factor
        return self.windows * self.params.seq_len * factor


class ShardSpec(BaseModel):
    """Batches `[batch_lo, batch_hi)` of one protocol's plan: the unit a worker runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: str
    shard: int
    batch_lo: int
    batch_hi: int
    windows: int


class JobPlan(BaseModel):
    """Every protocol's plan and every shard of a job, in protocol order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocols: tuple[ProtocolPlan, ...]
    shards: tuple[ShardSpec, ...]

    def protocol(self, name: str) -> ProtocolPlan:
        for plan in self.protocols:
            if plan.protocol == name:
                return plan
        raise KeyError(name)

    @property
    def windows(self) -> int:
        return sum(plan.windows for plan in self.protocols)

    @property
    def cost(self) -> float:
        return sum(plan.cost for plan in self.protocols)


HEAD_FACTORS = {"frozen": 3.3, "slot": 6.2, "slot-reference": 5.0}
"""fp32 [B, T, V] buffers one batch holds at its peak, per path: calibrated from
`scripts/batch_memory.py` (peak resident growth of one CPU batch, tiny model, vocab
1,024 and 4,096, L 64 and 128, glibc's mmap threshold pinned so that freed buffers leave
the resident set): the vocabulary-dependent part grows as B·T·V times 2.1–2.7 for a
frozen model (sliding, plain), 5.1 for the SLOT fast path and 4.1 for its reference
path (`tests/test_batch_memory.py` holds the estimate to the measurement).
Each factor is the measured one plus 20 %; protocols not known to be frozen or SLOT
(test-time training) get the largest."""

FROZEN = frozenset({"plain", "sliding"})


def batch_bytes(
    params: EvalParams,
    *,
    model_dim: int,
    num_layers: int,
    num_heads: int,
    vocab_size: int,
    protocol: str | None = None,
) -> int:
    """Estimated peak activation bytes of one batch (fp32): attention scores of a layer,
    the residual stream of every layer, and the head's [B, T, V] buffers of the path the
    protocol runs (HEAD_FACTORS). An upper estimate for refusing batches no worker can
    hold; `protocol` None is priced as the costliest path. `ttt-lora`'s batch is
    `lora_batch_docs` documents whose head runs on one `lora_chunk` of rows (not calibrated
    by measurement: the largest factor stands in for its backward)."""
    B, T = params.batch_windows, params.seq_len
    head_rows = T
    if protocol == "ttt-lora":  # a batch of documents, windows ≤ L, the head on one chunk
        B, head_rows = params.lora_batch_docs, min(params.lora_chunk, T)
    attention = B * num_heads * T * T
    stream = B * T * model_dim * (num_layers + 8)
    if protocol in FROZEN:
        factor = HEAD_FACTORS["frozen"]
    elif protocol is not None and protocol.startswith("slot"):
        factor = HEAD_FACTORS["slot-reference" if params.reference else "slot"]
    else:
        factor = max(HEAD_FACTORS.values())
    return int(4 * (attention + stream + factor * B * head_rows * vocab_size))


def plan_protocol(
    name: str, tokens: int | np.ndarray, params: EvalParams, chain_workers: int = 1
) -> ProtocolPlan:
    """Protocol `name` over the val tokens (N + 1, already truncated for seq_len), or over
    just their count for protocols planned by windows. A stream protocol is planned from
    its outline (`plan_stream`)."""
    protocol = get_protocol(name)
    resolved = protocol.resolve(params)
    if protocol.sequential:
        return plan_stream(name, tokens, resolved, chain_workers)
    n_tokens = tokens if isinstance(tokens, int | np.integer) else len(tokens)
    plan = protocol.plan(n_tokens - 1, resolved)
    whole = plan
    if resolved.max_windows is not None:
        whole = protocol.plan(n_tokens - 1, resolved.model_copy(update={"max_windows": None}))
    return ProtocolPlan(
        protocol=name,
        params=resolved,
        windows=len(plan),
        scored_tokens=plan.scored_tokens,
        windows_total=len(whole),
    )


def plan_stream(
    name: str, tokens: int | np.ndarray, params: EvalParams, chain_workers: int = 1
) -> ProtocolPlan:
    """A stream protocol's plan, its batches the steps of its outline (records per chunk or
    document batch). Shardable steps (canonical `ttt-lora`) are cut into shards like any
    batches; a chain (`ttt`, canonical `ttt-phased`) is one shard that a gang of
    `chain_workers` runs data-parallel (canonical `ttt-lora` with warm-start A is a
    chain too). Record modes, whose results follow the record's scheduling, are
    ConfigErrors."""
    protocol = get_protocol(name)
    shardable = protocol.shardable(params)  # type: ignore[attr-defined]
    if not shardable and not protocol.chainable(params):  # type: ignore[attr-defined]
        raise ConfigError(
            f"{name} in {params.ttt_mode!r} mode follows the record's batch timing and "
            "random stream, so it runs in one process; the service runs "
            "ttt_mode=canonical: score it with `golf eval`"
        )
    if isinstance(tokens, int | np.integer):
        raise ConfigError(f"protocol {name!r} is planned from the val tokens, not their count")
    if chain_workers < 1:
        raise ConfigError(f"chain_workers must be ≥ 1, got {chain_workers}")
    outline = protocol.outline(tokens, params)  # type: ignore[attr-defined]
    return ProtocolPlan(
        protocol=name,
        params=params,
        windows=outline.units,
        scored_tokens=outline.scored_tokens,
        windows_total=outline.units_total,
        batch_sizes=outline.step_sizes,
        chain_workers=0 if shardable else chain_workers,
    )


def plan_job(
    tokens: int | np.ndarray,
    protocols: Sequence[str],
    params: EvalParams,
    batches_per_shard: int,
    chain_workers: int = 1,
) -> JobPlan:
    """Plan each protocol and cut it into shards of at most `batches_per_shard` batches; a
    chain is one shard of every step, for a gang of `chain_workers`.

    ConfigError if a protocol is unknown, named twice, or its params do not fit.
    """
    if len(set(protocols)) != len(protocols):
        raise ConfigError("protocols: name each protocol once")
    if batches_per_shard < 1:
        raise ConfigError(f"batches_per_shard must be ≥ 1, got {batches_per_shard}")
    plans = tuple(plan_protocol(name, tokens, params, chain_workers) for name in protocols)
    shards: list[ShardSpec] = []
    for plan in plans:
        per_shard = plan.batches if plan.chain else batches_per_shard
        ranges = shard_plan(plan.batches, math.ceil(plan.batches / max(per_shard, 1)))
        shards.extend(
            ShardSpec(
                protocol=plan.protocol,
                shard=i,
                batch_lo=r.start,
                batch_hi=r.stop,
                windows=plan.windows_in(r.start, r.stop),
            )
            for i, r in enumerate(ranges)
        )
    return JobPlan(protocols=plans, shards=tuple(shards))
