"""The window plan: exact-once scoring, the legacy reference plan, batches and shards."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from golf.spec.errors import ConfigError
from golf.spec.plan import make_plan, shard_plan


@st.composite
def shapes(draw):
    seq_len = draw(st.integers(1, 300))
    stride = draw(st.integers(1, seq_len))
    n_targets = draw(st.integers(1, 3000))
    return n_targets, seq_len, stride


def times_scored(plan) -> np.ndarray:
    """How often each target 0..N-1 is scored."""
    counts = np.zeros(plan.n_targets, dtype=np.int64)
    for start, lo, hi in zip(plan.starts, plan.score_from, plan.lengths, strict=True):
        counts[start + lo : start + hi] += 1
    return counts


def reference_plan(n_targets, seq_len, stride):
    """The reference scripts' eval_val_sliding plan, written as they write it."""
    windows = []
    for start in range(0, n_targets, stride):
        length = min(start + seq_len, n_targets) - start
        if length >= 1:
            windows.append((start, length, 0 if start == 0 else max(length - stride, 0)))
    return windows


@given(shapes())
def test_canonical_scores_every_target_exactly_once(shape):
    n_targets, seq_len, stride = shape
    plan = make_plan(n_targets, seq_len, stride)
    assert (times_scored(plan) == 1).all()
    assert plan.scored_tokens == n_targets
    context = seq_len - stride
    assert plan.starts[0] == 0 and (np.diff(plan.starts) == stride).all()
    assert (plan.starts[1:] + context < n_targets).all()  # w + c < N
    assert (plan.starts + plan.lengths <= n_targets).all()
    assert (plan.lengths <= seq_len).all()
    assert (plan.score_from[1:] == context).all() and plan.score_from[0] == 0
    # The next start would have nothing left to score.
    assert plan.starts[-1] + stride + context >= n_targets


@given(shapes())
def test_legacy_is_the_reference_plan(shape):
    plan = make_plan(*shape, kind="legacy")
    windows = list(zip(plan.starts, plan.lengths, plan.score_from, strict=True))
    assert windows == reference_plan(*shape)
    assert (times_scored(plan) >= 1).all()


def test_legacy_overcounts_the_tail():
    n_targets, seq_len, stride = 1025, 256, 64
    legacy = make_plan(n_targets, seq_len, stride, kind="legacy")
    canonical = make_plan(n_targets, seq_len, stride)
    counts = times_scored(legacy)
    assert legacy.scored_tokens > n_targets == canonical.scored_tokens
    # Only the last stride of targets is scored again, once per tail window, down to length 1.
    assert (counts[: n_targets - stride] == 1).all()
    assert counts[-1] == 1 + (seq_len - 1) // stride
    assert legacy.lengths[-1] == 1 and len(legacy) > len(canonical)


@given(shapes(), st.integers(1, 50))
def test_max_windows_keeps_the_first_windows(shape, max_windows):
    full, cut = make_plan(*shape), make_plan(*shape, max_windows=max_windows)
    assert len(cut) == min(max_windows, len(full))
    for name in ("starts", "lengths", "score_from"):
        assert (getattr(cut, name) == getattr(full, name)[: len(cut)]).all()


@given(shapes(), st.integers(1, 40))
def test_batches_partition_the_windows(shape, batch_windows):
    plan = make_plan(*shape)
    batches = [plan.batch(k, batch_windows) for k in range(plan.n_batches(batch_windows))]
    assert [i for batch in batches for i in batch] == list(range(len(plan)))
    with pytest.raises(ConfigError):
        plan.batch(plan.n_batches(batch_windows), batch_windows)


@given(st.integers(0, 500), st.integers(1, 64))
def test_shards_are_balanced_runs_of_whole_batches(n_batches, n_shards):
    shards = shard_plan(n_batches, n_shards)
    assert [k for shard in shards for k in shard] == list(range(n_batches))
    assert len(shards) == min(n_batches, n_shards)
    sizes = [len(shard) for shard in shards]
    assert not sizes or (min(sizes) >= 1 and max(sizes) - min(sizes) <= 1)


@pytest.mark.parametrize(
    "args",
    [
        (0, 8, 4),
        (10, 8, 0),
        (10, 8, 9),
        (10, 0, 1),
        (10, 8, 4, "sideways"),
        (10, 8, 4, "legacy", 0),
    ],
)
def test_invalid_plans_are_config_errors(args):
    with pytest.raises(ConfigError):
        make_plan(*args)


def test_invalid_shard_counts_are_config_errors():
    with pytest.raises(ConfigError):
        shard_plan(10, 0)


def test_full_strict_runs_no_window_that_reaches_the_last_target():
    """2026-03-24's `range(0, N - L, S)`: with S dividing N - L, one window fewer than full."""
    strict, full = make_plan(4096, 128, 64, "full-strict"), make_plan(4096, 128, 64, "full")
    assert strict.starts.tolist() == list(range(0, 4096 - 128, 64))
    assert len(full) == len(strict) + 1 and (full.starts[:-1] == strict.starts).all()
    assert strict.scored_tokens == full.scored_tokens - 64
    assert (strict.lengths == 128).all() and strict.score_from[0] == 0
    assert (strict.score_from[1:] == 64).all()
    for stride in (7, 48, 128, 1):
        plan = make_plan(4096, 128, stride, "full-strict")
        assert plan.starts.tolist() == list(range(0, 4096 - 128, stride))
    with pytest.raises(ConfigError):
        make_plan(128, 128, 64, "full-strict")
