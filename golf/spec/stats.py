"""Statistics of val_bpb differences: paired bootstrap over windows, seed groups, Welch.

Torch-free, so the client CLI can use it (lazily: the bootstrap needs numpy, the rest is
pure Python). Inputs are per-window records `(window, nll_sum, tokens, bytes)` as
`golf eval --save` writes them and `GET /v1/jobs/{id}/windows` returns them.

- `paired_bootstrap(a, b)`: Δ val_bpb = bpb(B) − bpb(A) of two runs scored over the same
  windows (same dataset, same plan: `pairing_problem` says why not otherwise), with a 95 %
  CI from resampling windows with replacement, the same indices for A and B. A resample's
  bpb is Σ nll / ln 2 / Σ bytes over its windows, so windows weigh by their bytes.
- `unpaired_bootstrap(a, b)`: the same, resampling A's and B's windows independently (for
  runs that cannot be paired: seed groups of different sizes).
- `welch(a, b)`: Welch's t-test over per-seed val_bpb; p from the Student t CDF, through
  the regularized incomplete beta function (a continued fraction; no scipy).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from golf.spec.errors import ConfigError

PLAN_FIELDS = ("seq_len", "stride", "plan", "max_windows")
"""Resolved protocol params that decide which targets each window scores."""

RESAMPLES = 2000
SEED = 0
CHUNK_ELEMENTS = 1 << 22
"""Resampled window counts held at once (resamples × windows): 32 MiB of float64."""

LN2 = math.log(2.0)


def _numpy() -> Any:
    try:
        import numpy as np
    except ImportError:  # a client-only install
        raise ConfigError(
            "the bootstrap needs numpy: pip install numpy (or golf-eval[eval])"
        ) from None
    return np


@dataclass(frozen=True)
class Windows:
    """One protocol's per-window records of one run, as arrays sorted by window index."""

    window: Any
    nll: Any
    tokens: Any
    bytes: Any

    @classmethod
    def of(cls, records: Iterable[Any]) -> Windows:
        """From dicts (JSON) or objects (`WindowRecord`) with window, nll_sum, tokens, bytes."""
        np = _numpy()
        rows = [
            (r["window"], r["nll_sum"], r["tokens"], r["bytes"])
            if isinstance(r, Mapping)
            else (r.window, r.nll_sum, r.tokens, r.bytes)
            for r in records
        ]
        rows.sort(key=lambda r: r[0])
        if not rows:
            raise ConfigError("no window records to compare")
        w, nll, tok, nb = zip(*rows, strict=True)
        return cls(
            np.asarray(w, dtype=np.int64),
            np.asarray(nll, dtype=np.float64),
            np.asarray(tok, dtype=np.int64),
            np.asarray(nb, dtype=np.int64),
        )

    @classmethod
    def concat(cls, runs: Sequence[Windows]) -> Windows:
        """Several runs' windows as one pool (seed groups), in the given order."""
        np = _numpy()
        return cls(*(np.concatenate([getattr(r, f) for r in runs]) for f in _FIELDS))

    def __len__(self) -> int:
        return int(self.window.size)

    @property
    def val_bpb(self) -> float:
        """As a report states it: exactly summed NLL (math.fsum) over Σ bytes."""
        return math.fsum(self.nll.tolist()) / LN2 / int(self.bytes.sum())


_FIELDS = ("window", "nll", "tokens", "bytes")


def pairing_problem(
    a: Windows,
    b: Windows,
    params_a: Mapping[str, Any] | None = None,
    params_b: Mapping[str, Any] | None = None,
    dataset_a: str | None = None,
    dataset_b: str | None = None,
) -> str | None:
    """Why two runs' windows cannot be paired one to one, or None when they can: the
    dataset, a plan field, the window count, or a window's scored tokens/bytes differ."""
    if dataset_a and dataset_b and dataset_a != dataset_b:
        return f"datasets differ ({dataset_a[:12]} vs {dataset_b[:12]})"
    for name in PLAN_FIELDS:
        va, vb = (params_a or {}).get(name), (params_b or {}).get(name)
        if va != vb:
            return f"{name} differs ({va} vs {vb})"
    if len(a) != len(b):
        return f"window counts differ ({len(a):,} vs {len(b):,})"
    np = _numpy()
    for field in ("window", "bytes", "tokens"):
        differ = np.flatnonzero(getattr(a, field) != getattr(b, field))
        if differ.size:
            i = int(differ[0])
            what = "window indices" if field == "window" else f"per-window {field}"
            va, vb = getattr(a, field)[i], getattr(b, field)[i]
            return f"{what} differ (first at record {i}: {va} vs {vb})"
    return None


@dataclass(frozen=True)
class Delta:
    """Δ val_bpb = bpb(B) − bpb(A) with its bootstrap CI; significant if the CI excludes 0."""

    delta_bpb: float
    ci95: tuple[float, float]
    n_windows: int
    significant: bool
    paired: bool
    resamples: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "delta_bpb": self.delta_bpb,
            "ci95": list(self.ci95),
            "n_windows": self.n_windows,
            "significant": self.significant,
            "paired": self.paired,
            "resamples": self.resamples,
            "seed": self.seed,
        }


def _delta(point: float, replicates: Any, n: int, paired: bool, resamples: int, seed: int) -> Delta:
    np = _numpy()
    lo, hi = (float(x) for x in np.quantile(replicates, [0.025, 0.975]))
    return Delta(point, (lo, hi), n, lo > 0 or hi < 0, paired, resamples, seed)


def _resampled_sums(rng: Any, columns: Any, resamples: int, chunk_elements: int) -> Any:
    """[resamples, k] sums of the k `columns` ([k, n]) over windows drawn with replacement.

    Each resample's draw becomes per-window counts (bincount), and a chunk of count rows
    times the columns is one matrix product: cache-friendlier than gathering by index.
    At most `chunk_elements` counts are held at once.
    """
    np = _numpy()
    n = columns.shape[1]
    dtype = np.int32 if n < 2**31 else np.int64
    per = max(1, chunk_elements // n)
    out = np.empty((resamples, columns.shape[0]))
    counts = np.empty((min(per, resamples), n))
    for lo in range(0, resamples, per):
        hi = min(resamples, lo + per)
        for r in range(hi - lo):
            counts[r] = np.bincount(rng.integers(0, n, size=n, dtype=dtype), minlength=n)
        out[lo:hi] = counts[: hi - lo] @ columns.T
    return out


def paired_bootstrap(
    a: Windows,
    b: Windows,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> Delta:
    """Δ = bpb(B) − bpb(A) and its 95 % paired-bootstrap CI over windows.

    The runs must pair (`pairing_problem` is None; checked here, ConfigError otherwise),
    so a window has the same bytes in both and a resample's Δ is
    Σ (nll_B − nll_A) / ln 2 / Σ bytes over the resampled windows.
    """
    if (why := pairing_problem(a, b)) is not None:
        raise ConfigError(f"cannot pair the runs' windows: {why}")
    np = _numpy()
    rng = np.random.default_rng(seed)
    columns = np.stack([b.nll - a.nll, a.bytes.astype(np.float64)])
    sums = _resampled_sums(rng, columns, resamples, chunk_elements)
    replicates = sums[:, 0] / LN2 / sums[:, 1]
    return _delta(b.val_bpb - a.val_bpb, replicates, len(a), True, resamples, seed)


def unpaired_bootstrap(
    a: Windows,
    b: Windows,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> Delta:
    """Δ = bpb(B) − bpb(A) with a CI from resampling A's and B's windows independently;
    `n_windows` is the smaller run's count."""
    np = _numpy()
    rng = np.random.default_rng(seed)
    bpb = []
    for run in (a, b):
        columns = np.stack([run.nll, run.bytes.astype(np.float64)])
        sums = _resampled_sums(rng, columns, resamples, chunk_elements)
        bpb.append(sums[:, 0] / LN2 / sums[:, 1])
    n = min(len(a), len(b))
    return _delta(b.val_bpb - a.val_bpb, bpb[1] - bpb[0], n, False, resamples, seed)


# ---- seed groups -----------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ConfigError("no values")
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class Welch:
    """Welch's t-test of mean(B) − mean(A): t, Welch–Satterthwaite dof, two-sided p."""

    t: float
    dof: float
    p: float

    def as_dict(self) -> dict[str, float]:
        return {"t": self.t, "dof": self.dof, "p": self.p}


def welch(a: Sequence[float], b: Sequence[float]) -> Welch | None:
    """Welch's unequal-variance t-test over two groups' per-seed values; None when a group
    has fewer than 2 values or both have no spread (t is undefined)."""
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    assert sa is not None and sb is not None
    va, vb = sa * sa / len(a), sb * sb / len(b)
    if va + vb == 0:
        return None
    t = (mb - ma) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    return Welch(t, dof, t_two_sided_p(t, dof))


def t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| ≥ |t|) for Student's t with `dof` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"dof must be positive, got {dof}")
    if math.isinf(t):
        return 0.0
    return betainc(dof / 2, 0.5, dof / (dof + t * t))


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by Lentz's continued fraction
    (Numerical Recipes' betacf), using the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) where
    the fraction converges faster."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        + a * math.log(x) + b * math.log1p(-x)
    )  # fmt: skip
    front = math.exp(log_front)
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float, eps: float = 1e-15, max_iter: int = 10_000) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


# ---- one run's score -------------------------------------------------------------------

SCORE_RESAMPLES = 1000
"""Resamples of a report's within-run CI: ~8 s for a million windows on one core."""


def score_ci(
    run: Windows,
    resamples: int = SCORE_RESAMPLES,
    seed: int = SEED,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[float, float]:
    """95 % CI of one run's val_bpb from resampling its windows (byte-weighted, as the
    score). Within-run: it says how much the number depends on which text was scored,
    nothing of how another seed would train; never the basis of a record verdict."""
    np = _numpy()
    rng = np.random.default_rng(seed)
    columns = np.stack([run.nll, run.bytes.astype(np.float64)])
    sums = _resampled_sums(rng, columns, resamples, chunk_elements)
    lo, hi = np.quantile(sums[:, 0] / LN2 / sums[:, 1], [0.025, 0.975])
    return float(lo), float(hi)


# ---- the record rule -------------------------------------------------------------------

RECORD_MARGIN_NATS = 0.005
RECORD_ALPHA = 0.01


def t_upper_p(t: float, dof: float) -> float:
    """P(T ≥ t) for Student's t with `dof` degrees of freedom (one-sided)."""
    half = t_two_sided_p(t, dof) / 2
    return half if t >= 0 else 1.0 - half


def t_quantile(q: float, dof: float) -> float:
    """The t with P(T ≤ t) = q, by bisection on `t_upper_p` (monotone in t)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1.0 - t_upper_p(mid, dof) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class RecordTest:
    """Does B beat A by more than `margin` nats, at one-sided level `alpha`?

    improvement = mean(A) − mean(B) of the seeds' val_loss (nats per token; lower is
    better, so positive means B is better). H0: improvement ≤ margin; Welch's t with
    the Welch–Satterthwaite dof; p = P(T ≥ t). `ci95` is the two-sided 95 % Welch CI of
    the improvement. `verdict` is "record" when p < alpha, "not a record" otherwise, and
    "undecided" when a group has fewer than 2 seeds or no spread at all (no t).
    """

    improvement: float
    ci95: tuple[float, float] | None
    t: float | None
    dof: float | None
    p: float | None
    margin: float
    alpha: float
    seeds: tuple[int, int]
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "improvement_nats": self.improvement,
            "ci95": list(self.ci95) if self.ci95 else None,
            "t": self.t,
            "dof": self.dof,
            "p": self.p,
            "margin_nats": self.margin,
            "alpha": self.alpha,
            "seeds": list(self.seeds),
            "verdict": self.verdict,
        }


def record_test(
    a: Sequence[float],
    b: Sequence[float],
    margin: float = RECORD_MARGIN_NATS,
    alpha: float = RECORD_ALPHA,
) -> RecordTest:
    """Parameter Golf's record rule over two seed groups' val_loss (A the standing
    record, B the challenger): one-sided Welch test that B improves on A by > margin."""
    if margin < 0 or not 0 < alpha < 1:
        raise ConfigError(f"margin must be ≥ 0 and alpha in (0, 1), got {margin}, {alpha}")
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    improvement = ma - mb
    seeds = (len(a), len(b))
    if sa is None or sb is None or sa == sb == 0:
        return RecordTest(improvement, None, None, None, None, margin, alpha, seeds, "undecided")
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    t = (improvement - margin) / se
    p = t_upper_p(t, dof)
    half = t_quantile(0.975, dof) * se
    verdict = "record" if p < alpha else "not a record"
    ci = (improvement - half, improvement + half)
    return RecordTest(improvement, ci, t, dof, p, margin, alpha, seeds, verdict)
