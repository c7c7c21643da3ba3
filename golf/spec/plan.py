"""Window plans: which tokens each evaluation window reads and which targets it scores.

One plan serves every protocol, every shard and every worker, so that val_bpb is a sum
over the same scored targets however the work is split. The canonical plan scores each
target exactly once; the legacy plan reproduces the reference scripts (and their tail
over-count) only so old logs can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golf.spec.errors import ConfigError
from golf.spec.params import PlanKind


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """Windows as parallel arrays; window i reads targets `starts[i] + [0, lengths[i])`.

    Window i's inputs are `tokens[starts[i] : starts[i] + lengths[i]]` and its targets the
    same slice shifted by one; it scores relative positions `[score_from[i], lengths[i])`.
    """

    kind: PlanKind
    n_targets: int
    seq_len: int
    stride: int
    starts: np.ndarray
    lengths: np.ndarray
    score_from: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def scored_tokens(self) -> int:
        """Σ scored targets over all windows (= n_targets on the canonical plan)."""
        return int((self.lengths - self.score_from).sum())

    def n_batches(self, batch_windows: int) -> int:
        return -(-len(self) // batch_windows)

    def batch(self, k: int, batch_windows: int) -> range:
        """Window indices of batch k: `[k·B, (k+1)·B)`, clipped to the plan."""
        if not 0 <= k < self.n_batches(batch_windows):
            raise ConfigError(f"batch {k} is outside the plan's {self.n_batches(batch_windows)}")
        return range(k * batch_windows, min((k + 1) * batch_windows, len(self)))


def make_plan(
    n_targets: int,
    seq_len: int,
    stride: int,
    kind: PlanKind = "canonical",
    max_windows: int | None = None,
) -> WindowPlan:
    """The window plan for `n_targets` targets (val tokens − 1), optionally its first M windows."""
    if n_targets < 1:
        raise ConfigError(f"need at least one target token, got {n_targets}")
    if not 1 <= stride <= seq_len:
        raise ConfigError(f"stride must be in [1, seq_len={seq_len}], got {stride}")
    if max_windows is not None and max_windows < 1:
        raise ConfigError(f"max_windows must be ≥ 1, got {max_windows}")
    context = seq_len - stride
    if kind == "canonical":
        # Starts while the window still has a target past its context: w + c < N.
        count = max(1, -(-(n_targets - context) // stride))
    elif kind == "legacy":
        count = -(-n_targets // stride)
    else:
        raise ConfigError(f"unknown plan {kind!r}; expected 'canonical' or 'legacy'")
    if max_windows is not None:
        count = min(count, max_windows)
    starts = np.arange(count, dtype=np.int64) * stride
    lengths = np.minimum(seq_len, n_targets - starts)
    if kind == "canonical":
        score_from = np.full(count, context, dtype=np.int64)
    else:
        score_from = np.maximum(lengths - stride, 0)
    score_from[0] = 0
    for array in (starts, lengths, score_from):
        array.flags.writeable = False
    return WindowPlan(kind, n_targets, seq_len, stride, starts, lengths, score_from)


def shard_plan(n_batches: int, n_shards: int) -> list[range]:
    """Split batches `[0, n_batches)` into at most `n_shards` contiguous, balanced ranges."""
    if n_batches < 0 or n_shards < 1:
        raise ConfigError(f"cannot split {n_batches} batches into {n_shards} shards")
    n = min(n_shards, n_batches)
    return [range(n_batches * i // n, n_batches * (i + 1) // n) for i in range(n)]
