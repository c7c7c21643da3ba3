"""Job planning: each protocol's window plan, resolved, cut into shards of whole batches.

Pure and typed: the service's router calls it to price and store a job, the scheduler
reads the stored result back, and `golf eval` sizes its progress bars with it, so the
windows a job promises are the windows every layer counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    windows_total: int | None = None
    """Windows of the uncut plan (max_windows aside); None in plans stored before."""

    @property
    def partial(self) -> bool | None:
        """Whether max_windows cut the plan short of the whole val; None if unknown."""
        return None if self.windows_total is None else self.windows < self.windows_total

    @property
    def batches(self) -> int:
        return -(-self.windows // self.params.batch_windows)

    @property
    def cost(self) -> float:
        """Work in forward window-tokens: windows × seq_len × the protocol's cost factor."""
        factor = get_protocol(self.protocol).cost_factor(self.params)
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
    hold; `protocol` None is priced as the costliest path."""
    B, T = params.batch_windows, params.seq_len
    attention = B * num_heads * T * T
    stream = B * T * model_dim * (num_layers + 8)
    if protocol in FROZEN:
        factor = HEAD_FACTORS["frozen"]
    elif protocol is not None and protocol.startswith("slot"):
        factor = HEAD_FACTORS["slot-reference" if params.reference else "slot"]
    else:
        factor = max(HEAD_FACTORS.values())
    return int(4 * (attention + stream + factor * B * T * vocab_size))


def plan_protocol(name: str, n_tokens: int, params: EvalParams) -> ProtocolPlan:
    """Protocol `name` over `n_tokens` val tokens (N + 1, already truncated for seq_len)."""
    protocol = get_protocol(name)
    if protocol.sequential:
        raise ConfigError(
            f"protocol {name!r} adapts along the stream and runs as one chain; "
            "the service does not shard it yet: score it with `golf eval`"
        )
    resolved = protocol.resolve(params)
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


def plan_job(
    n_tokens: int, protocols: Sequence[str], params: EvalParams, batches_per_shard: int
) -> JobPlan:
    """Plan each protocol and cut it into shards of at most `batches_per_shard` batches.

    ConfigError if a protocol is unknown, named twice, or its params do not fit.
    """
    if len(set(protocols)) != len(protocols):
        raise ConfigError("protocols: name each protocol once")
    if batches_per_shard < 1:
        raise ConfigError(f"batches_per_shard must be ≥ 1, got {batches_per_shard}")
    plans = tuple(plan_protocol(name, n_tokens, params) for name in protocols)
    shards: list[ShardSpec] = []
    for plan in plans:
        B = plan.params.batch_windows
        ranges = shard_plan(plan.batches, math.ceil(plan.batches / batches_per_shard))
        shards.extend(
            ShardSpec(
                protocol=plan.protocol,
                shard=i,
                batch_lo=r.start,
                batch_hi=r.stop,
                windows=min(r.stop * B, plan.windows) - r.start * B,
            )
            for i, r in enumerate(ranges)
        )
    return JobPlan(protocols=plans, shards=tuple(shards))
