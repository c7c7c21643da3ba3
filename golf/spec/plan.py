"""Window plans: which tokens each evaluation window reads and which targets it scores.

One plan serves every protocol, every shard and every worker, so that val_bpb is a sum
over the same scored targets however the work is split. The canonical plan scores each
target exactly once; the others reproduce the records' own sliding evaluations only so
their logs can be compared (N targets, window length L, stride S):

- `legacy`: starts 0, S, 2S, … < N, windows down to one token; each scores
  `[max(len − S, 0), len)`, the first all of it (the tail is over-counted);
- `legacy-stride`: the same without the windows shorter than S (but the first);
- `full`: only whole windows (start + L ≤ N); the first scores `[0, L)`, the others
  `[L − S, L)` (the tail past the last whole window is not scored);
- `full-last`: the same windows, each scoring only `[L − S, L)`, the first too;
- `full-strict`: as `full`, with windows only while start + L < N (starts
  `range(0, N − L, S)`): a window that would end on the last target is not run, so when S
  divides N − L (always, with N a multiple of L and S dividing L) the last S targets of
  `full` are not scored (2026-03-24's ternary record).
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
    elif kind == "legacy-stride":  # windows of at least S targets, and the first
        count = max(1, (n_targets - stride) // stride + 1)
    elif kind in ("full", "full-last"):
        if n_targets < seq_len:
            raise ConfigError(f"plan {kind} needs at least L={seq_len} targets, got {n_targets}")
        count = (n_targets - seq_len) // stride + 1
    elif kind == "full-strict":
        if n_targets <= seq_len:
            raise ConfigError(f"plan {kind} needs more than L={seq_len} targets, got {n_targets}")
        count = (n_targets - seq_len - 1) // stride + 1
    else:
        raise ConfigError(
            f"unknown plan {kind!r}; expected canonical, legacy, legacy-stride, full, full-last "
            "or full-strict"
        )
    if max_windows is not None:
        count = min(count, max_windows)
    starts = np.arange(count, dtype=np.int64) * stride
    lengths = np.minimum(seq_len, n_targets - starts)
    if kind == "canonical":
        score_from = np.full(count, context, dtype=np.int64)
    else:
        score_from = np.maximum(lengths - stride, 0)
    if kind != "full-last":
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


@dataclass(frozen=True)
class StreamOutline:
    """What a stream protocol will score, counted before it runs: records per chain step
    (chunk, document batch) in processing order, the targets they score, and the records
    of the uncut run (max_windows aside). The service plans and prices from it; the
    protocol's `score` yields exactly these steps."""

    step_sizes: tuple[int, ...]
    scored_tokens: int
    units_total: int

    @property
    def units(self) -> int:
        return sum(self.step_sizes)
