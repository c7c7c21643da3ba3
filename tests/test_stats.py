"""golf.spec.stats on constructed records whose answer is known."""

import math

import numpy as np
import pytest

from golf.spec.errors import ConfigError
from golf.spec.stats import (
    Windows,
    betainc,
    mean_std,
    paired_bootstrap,
    pairing_problem,
    t_two_sided_p,
    unpaired_bootstrap,
    welch,
)

PARAMS = {"seq_len": 64, "stride": 32, "plan": "exact", "max_windows": None}


def run(n: int = 500, seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    tokens = np.full(n, 32)
    tokens[0] = 64
    n_bytes = rng.integers(40, 200, n)
    nll = rng.gamma(4.0, 20.0, n)
    return Windows(np.arange(n), nll, tokens, n_bytes)


def test_identical_runs_have_delta_zero_and_a_zero_ci() -> None:
    a = run()
    d = paired_bootstrap(a, Windows(*(x.copy() for x in (a.window, a.nll, a.tokens, a.bytes))))
    assert d.delta_bpb == 0.0 and d.ci95 == (0.0, 0.0)
    assert not d.significant and d.paired and d.n_windows == 500 and d.resamples >= 2000


def test_a_constant_bpb_shift_is_found_with_a_ci_around_it() -> None:
    a, c = run(), 0.0125
    # Every window's NLL grows by c bits per byte: every resample's Δ is c.
    shifted = Windows(a.window, a.nll + c * math.log(2) * a.bytes, a.tokens, a.bytes)
    d = paired_bootstrap(a, shifted)
    assert abs(d.delta_bpb - c) < 1e-12
    assert abs(d.ci95[0] - c) < 1e-12 and abs(d.ci95[1] - c) < 1e-12 and d.significant
    # Scaled so that the total bpb shifts by c: the resamples scatter around c.
    k = 1 + c / a.val_bpb
    scaled = Windows(a.window, a.nll * k, a.tokens, a.bytes)
    d = paired_bootstrap(a, scaled)
    assert abs(d.delta_bpb - c) < 1e-12
    assert d.ci95[0] < c < d.ci95[1] and d.ci95[1] - d.ci95[0] < c and d.significant


def test_noise_is_not_significant_and_the_seed_fixes_the_ci() -> None:
    a = run(2000)
    rng = np.random.default_rng(9)
    b = Windows(a.window, a.nll + rng.normal(0, 1.0, len(a)), a.tokens, a.bytes)
    d = paired_bootstrap(a, b)
    assert d.ci95[0] < 0 < d.ci95[1] or abs(d.delta_bpb) < 1e-4
    chunked = paired_bootstrap(a, b, chunk_elements=4000)  # the same draws, in chunks
    assert chunked.ci95 == pytest.approx(d.ci95, rel=1e-12)
    assert paired_bootstrap(a, b, seed=1).ci95 != d.ci95


def test_unpaired_bootstrap_of_different_runs() -> None:
    a, b = run(300, 1), run(400, 2)
    d = unpaired_bootstrap(a, b)
    assert d.delta_bpb == pytest.approx(b.val_bpb - a.val_bpb)
    assert d.ci95[0] < d.delta_bpb < d.ci95[1] and not d.paired and d.n_windows == 300


def test_val_bpb_is_a_reports() -> None:
    a = run()
    expected = math.fsum(a.nll.tolist()) / math.log(2) / int(a.bytes.sum())
    assert a.val_bpb == expected
    records = [
        {"window": int(w), "nll_sum": float(x), "tokens": int(t), "bytes": int(b)}
        for w, x, t, b in zip(a.window, a.nll, a.tokens, a.bytes, strict=True)
    ]
    assert Windows.of(reversed(records)).val_bpb == expected  # sorted by window


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"stride": 64}, "stride differs (32 vs 64)"),
        ({"seq_len": 128}, "seq_len differs (64 vs 128)"),
        ({"plan": "legacy"}, "plan differs (exact vs legacy)"),
        ({"max_windows": 24}, "max_windows differs (None vs 24)"),
    ],
)
def test_different_plans_cannot_be_paired(change: dict, why: str) -> None:
    a = run()
    assert pairing_problem(a, a, PARAMS, PARAMS, "d" * 64, "d" * 64) is None
    assert pairing_problem(a, a, PARAMS, PARAMS | change) == why


def test_pairing_names_the_window_field_that_differs() -> None:
    a = run()
    assert pairing_problem(a, a, None, None, "a" * 64, "b" * 64) == (
        "datasets differ (aaaaaaaaaaaa vs bbbbbbbbbbbb)"
    )
    assert pairing_problem(a, run(400)) == "window counts differ (500 vs 400)"
    other = Windows(a.window, a.nll, a.tokens, a.bytes.copy())
    other.bytes[7] += 1
    assert pairing_problem(a, other) == (
        f"per-window bytes differ (first at record 7: {a.bytes[7]} vs {a.bytes[7] + 1})"
    )
    with pytest.raises(ConfigError, match="cannot pair the runs' windows: per-window bytes"):
        paired_bootstrap(a, other)


def test_mean_std_is_the_sample_std() -> None:
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == (2.5, pytest.approx(math.sqrt(5 / 3)))
    assert mean_std([1.5]) == (1.5, None)


@pytest.mark.parametrize(
    ("a", "b", "x", "expected"),
    [
        (1, 1, 0.3, 0.3),
        (3, 1, 0.6, 0.6**3),
        (1, 4, 0.2, 1 - 0.8**4),
        (2, 3, 0.4, 0.5248),  # 1 − Σ_{j<2} C(4,j) 0.4^j 0.6^(4−j)
        (0.5, 0.5, 0.25, 2 / math.pi * math.asin(0.5)),  # arcsine law
        (10, 20, 0.3, 0.3640040810719435),  # binomial tail: P(Bin(29, 0.3) ≥ 10)
    ],
)
def test_betainc_matches_closed_forms(a: float, b: float, x: float, expected: float) -> None:
    assert betainc(a, b, x) == pytest.approx(expected, rel=1e-10, abs=1e-13)


@pytest.mark.parametrize(
    ("t", "dof", "p"),
    [
        (1.0, 1, 0.5),  # Cauchy
        (2.0, 2, 1 - 2 / math.sqrt(6)),  # closed form for 2 dof
        (2.228138851986, 10, 0.05),
        (2.0, 10, 0.07338803477074),
        (3.169272672617, 10, 0.01),
        (0.0, 5, 1.0),
    ],
)
def test_student_t_two_sided_p(t: float, dof: float, p: float) -> None:
    assert t_two_sided_p(t, dof) == pytest.approx(p, rel=1e-7)
    assert t_two_sided_p(-t, dof) == pytest.approx(p, rel=1e-7)


def test_welch_by_hand() -> None:
    a, b = [1.10, 1.12, 1.11], [1.05, 1.06, 1.04]
    w = welch(a, b)
    assert w is not None
    # mean diff −0.06, each variance 1e-4 / 3 → t = −0.06 / sqrt(2e-4/3), dof = 4
    assert w.t == pytest.approx(-0.06 / math.sqrt(2e-4 / 3))
    assert w.dof == pytest.approx(4.0)
    assert w.p == pytest.approx(t_two_sided_p(w.t, 4.0)) and w.p < 0.01
    assert welch([1.0], b) is None and welch([1.0, 1.0], [2.0, 2.0]) is None


# ---- the record rule -------------------------------------------------------------------


def test_t_quantile_inverts_the_cdf() -> None:
    from golf.spec.stats import t_quantile, t_upper_p

    assert t_quantile(0.975, 4) == pytest.approx(2.776445105, abs=1e-8)  # tables
    assert t_quantile(0.99, 10) == pytest.approx(2.763769457, abs=1e-8)
    for dof in (2.5, 7.0, 30.0):
        assert t_upper_p(t_quantile(0.95, dof), dof) == pytest.approx(0.05, abs=1e-12)


@pytest.mark.parametrize(
    ("improvement", "verdict"),
    [(0.0090, "record"), (0.0060, "not a record"), (0.0040, "not a record")],
)
def test_record_rule_on_both_sides_of_the_margin(improvement: float, verdict: str) -> None:
    """Three seeds a group, the same spread (std 0.0005 nats) on each side: with equal n
    and std, Welch's dof is 2(n − 1) = 4 and se = s·√(2/n), so t and p are known in
    closed form. 0.009 clears the 0.005 margin at p < 0.01; 0.006 beats the margin but
    not significantly; 0.004 is below it."""
    from golf.spec.stats import record_test, t_upper_p

    s, n = 0.0005, 3
    base = [3.0 - s, 3.0, 3.0 + s]
    challenger = [v - improvement for v in base]
    test = record_test(base, challenger)
    se = s * math.sqrt(2 / n)
    assert test.improvement == pytest.approx(improvement, abs=1e-12)
    assert test.dof == pytest.approx(4.0, rel=1e-9)
    assert test.t == pytest.approx((improvement - 0.005) / se, rel=1e-6)
    assert test.p == pytest.approx(t_upper_p((improvement - 0.005) / se, 4.0), rel=1e-6)
    assert test.verdict == verdict and (test.p < 0.01) == (verdict == "record")
    lo, hi = test.ci95
    assert lo < improvement < hi and hi - improvement == pytest.approx(2.7764451 * se, rel=1e-6)


def test_record_rule_needs_two_seeds_a_group() -> None:
    from golf.spec.stats import record_test

    assert record_test([3.0], [2.9, 2.91]).verdict == "undecided"
    assert record_test([3.0, 3.0], [2.9, 2.9]).verdict == "undecided"  # no spread: no t


# ---- eval time -------------------------------------------------------------------------


def test_eval_time_is_projected_only_from_h100_class_gpus_and_flagged_past_600_s() -> None:
    from golf.spec.evaltime import projected_8xh100_s, time_words
    from golf.spec.records import time_flags

    assert projected_8xh100_s(4000.0, "NVIDIA H100 80GB HBM3") == 500.0  # ÷ 8 GPUs
    assert projected_8xh100_s(4000.0, "NVIDIA H200") == 500.0
    assert projected_8xh100_s(4000.0, "cpu") is None  # no honest factor: no guess
    assert projected_8xh100_s(4000.0, "NVIDIA A100-SXM4-80GB") is None
    reports = [
        {"protocol": "sliding", "projected_8xh100_s": 500.0},
        {"protocol": "slot", "projected_8xh100_s": 600.5},
        {"protocol": "plain", "projected_8xh100_s": None},
    ]
    assert [f.model_dump() for f in time_flags(reports)] == [
        {"code": "eval_time_over_limit", "protocol": "slot"}
    ]
    words = time_words({"wall_s": 75.0, "engine": {"device_name": "NVIDIA H100"}} | reports[1])
    assert words == "75.0 s wall on NVIDIA H100 (8×H100 ≈ 600.5 s OVER the 600 s limit)"


def test_t_upper_p_is_half_the_two_sided_on_the_right() -> None:
    from golf.spec.stats import t_upper_p

    assert t_upper_p(2.0, 4) == pytest.approx(t_two_sided_p(2.0, 4) / 2)
    assert t_upper_p(-2.0, 4) == pytest.approx(1 - t_two_sided_p(2.0, 4) / 2)
    assert t_upper_p(0.0, 4) == pytest.approx(0.5)
