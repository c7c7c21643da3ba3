"""golf.review's size, claims, time and significance checks on constructed folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from record_support import make_record

from golf.review import review_folder
from golf.review.checks import half_unit, train_tolerance_s
from golf.review.significance import significance
from golf.spec.stats import t_two_sided_p


def codes(review, severity: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in review.findings if severity is None or f.severity == severity]


def test_a_clean_record_passes(tmp_path: Path) -> None:
    r = review_folder(make_record(tmp_path / "ok"))
    assert r.verdict.startswith("PASS"), r.verdict
    assert {c: r.verdict_of(c) for c in ("size", "claims", "time", "legality")} == dict.fromkeys(
        ("size", "claims", "time", "legality"), "ok"
    )
    assert [s.logged_bpb for s in r.seeds] == [1.08, 1.081, 1.079]
    assert r.seeds[0].total_bytes == 15_900_000 + len((tmp_path / "ok/train_gpt.py").read_bytes())


def test_logs_over_budget_against_a_claim_under_it(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r", model_bytes=15_999_000)
    doc = json.loads((folder / "submission.json").read_text())
    doc["bytes_total"] = 15_999_000
    for v in doc["seed_results"].values():
        v["artifact_bytes"] = 15_999_000  # the model alone, as one record states it
    (folder / "submission.json").write_text(json.dumps(doc))
    r = review_folder(folder)
    assert r.verdict_of("size") == "fail"
    assert codes(r, "fail").count("size.over_budget_log") == 3
    assert "size.claim_disagrees_with_logs" in codes(r, "fail")
    assert codes(r).count("size.claim_is_model_only") == 3
    ev = next(f for f in r.findings if f.code == "size.over_budget_log").evidence[0]
    assert ev.startswith("train_seed42.log:13: Total submission size quantized+brotli: 16")


def test_stub_is_reported_with_both_sizes(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r")
    code = (folder / "train_gpt.py").read_text()
    (folder / "train_gpt_decode.py").write_text(code)
    (folder / "train_gpt.py").write_text(
        'exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())\n'
    )
    r = review_folder(folder)
    (stub,) = [f for f in r.findings if f.code == "code.stub"]
    assert f"74-byte stub that runs train_gpt_decode.py ({len(code):,} bytes)" in stub.message
    assert r.code["kind"] == "stub"


def test_seed_claim_off_by_more_than_its_rounding(tmp_path: Path) -> None:
    r = review_folder(make_record(tmp_path / "r", submission={
        "seed_results": {"42": {"val_bpb": 1.0802}, "314": {"val_bpb": 1.081},
                         "999": {"val_bpb": 1.079}},
    }))  # fmt: skip
    (f,) = [f for f in r.findings if f.code == "claims.seed_mismatch"]
    assert f.message.startswith("seed 42: claims val_bpb 1.0802, the closest logged score is 1.08")
    assert f.evidence == [
        "train_seed42.log:16: quantized_ttt_phased val_loss:2.79000000 val_bpb:1.08000000 "
        "eval_time:300000ms"
    ]


def test_mean_std_and_loss_claims(tmp_path: Path) -> None:
    r = review_folder(make_record(tmp_path / "a", submission={"val_bpb": 1.0805}))
    assert "claims.mean_mismatch" in codes(r, "fail")
    std_pop = math.sqrt(((0.0) ** 2 + 0.001**2 + 0.001**2) / 3)
    r = review_folder(make_record(tmp_path / "b", submission={"val_bpb_std": round(std_pop, 8)}))
    assert "claims.std_population" in codes(r, "info")
    r = review_folder(make_record(tmp_path / "c", submission={"val_loss": 1.08, "val_bpb": None}))
    assert "claims.loss_is_bpb" in codes(r, "fail") and "claims.no_bpb" in codes(r, "warn")


def test_claimed_mean_of_rounded_seed_claims_is_accepted(tmp_path: Path) -> None:
    # logged 1.080044, 1.081044, 1.079044 (mean 1.080044); stated per seed to 4 decimals
    # (1.08, 1.081, 1.079), and the claimed mean 1.08 is the mean of those: accepted
    seeds = {1: (1.080044, 2.79), 2: (1.081044, 2.79), 3: (1.079044, 2.79)}
    stated = {str(s): {"val_bpb": round(b, 4)} for s, (b, _) in seeds.items()}
    claim = {"val_bpb": 1.08, "seed_results": stated}
    r = review_folder(make_record(tmp_path / "r", seeds=seeds, submission=claim))
    assert "claims.mean_ok" in codes(r, "pass")
    claim = {"val_bpb": 1.0801, "seed_results": stated}
    r = review_folder(make_record(tmp_path / "s", seeds=seeds, submission=claim))
    assert "claims.mean_mismatch" in codes(r, "fail")


def test_seed_count_and_missing_logs(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r", seeds={42: (1.08, 2.79)}, submission={"seeds": [42, 7]})
    r = review_folder(folder)
    assert "claims.seed_without_log" in codes(r, "warn")
    assert "claims.seed_count" in codes(r, "warn")
    assert "claims.mean_unverifiable" in codes(r, "warn")


def test_time_over_and_the_last_step_tolerance(tmp_path: Path) -> None:
    r = review_folder(make_record(tmp_path / "a", log_kwargs={"train_ms": 600_400.0}))
    assert codes(r, "warn").count("time.train_cap_overshoot") == 3  # within 1 s (no step_avg)
    r = review_folder(make_record(tmp_path / "b", log_kwargs={"train_ms": 602_000.0}))
    assert codes(r, "fail").count("time.train_over") == 3
    r = review_folder(make_record(tmp_path / "c", log_kwargs={"eval_ms": 610_000.0}))
    assert codes(r, "fail").count("time.eval_over") == 3
    r = review_folder(make_record(tmp_path / "d", submission={"eval_time_s": 700}))
    assert "time.claim_over" in codes(r, "fail")


def test_tolerances() -> None:
    assert half_unit(1.08301) == pytest.approx(5e-6)
    assert half_unit(0.0005) == pytest.approx(5e-5)
    assert half_unit(2.0) == pytest.approx(0.05)
    assert train_tolerance_s(83.59) == pytest.approx(0.16718)
    assert train_tolerance_s(None) == 1.0


def test_welch_against_a_folder(tmp_path: Path) -> None:
    base = make_record(
        tmp_path / "base", seeds={1: (1.09, 2.820), 2: (1.091, 2.822), 3: (1.089, 2.818)}
    )
    cand = make_record(
        tmp_path / "cand", seeds={1: (1.08, 2.800), 2: (1.081, 2.801), 3: (1.079, 2.799)}
    )
    r = review_folder(cand, against=base)
    sig = r.significance
    # improvement 0.02 nats; variances 4e-6/3 and 1e-6/3; t = (0.02 - 0.005) / sqrt(5e-6/3)
    se = math.sqrt(4e-6 / 3 + 1e-6 / 3)
    assert sig["improvement_nats"] == pytest.approx(0.02)
    assert sig["improvement_bpb"] == pytest.approx(0.01)
    assert sig["t"] == pytest.approx(0.015 / se)
    assert sig["dof"] == pytest.approx(
        (5e-6 / 3) ** 2 / ((4e-6 / 3) ** 2 / 2 + (1e-6 / 3) ** 2 / 2)
    )
    assert sig["p"] == pytest.approx(t_two_sided_p(sig["t"], sig["dof"]) / 2)
    assert sig["verdict"] == "significant" and sig["p"] < 0.01
    assert "significance.significant" in codes(r, "pass")


def test_not_significant_when_the_gain_is_under_the_bar() -> None:
    s = significance([2.80, 2.801, 2.799], [1.08] * 3, [2.806, 2.807, 2.805], [1.083] * 3)
    assert s["improvement_nats"] == pytest.approx(0.006)
    assert s["verdict"] == "not significant" and s["p"] > 0.01


def test_baseline_means_only() -> None:
    s = significance([2.80, 2.801, 2.799], [1.08, 1.0805, 1.0795], against_loss=2.83)
    assert s["verdict"] == "significant"
    assert s["dof"] == pytest.approx(2.0)
    assert "spread is unknown" in s["notes"][0]
    s = significance([2.80, 2.801, 2.799], [1.08, 1.0805, 1.0795], against_bpb=1.1)
    ratio = 2.80 / 1.08
    assert s["improvement_nats"] == pytest.approx(1.1 * ratio - 2.80)
    assert "same tokenizer assumed" in s["notes"][0]


def test_untestable_cases() -> None:
    assert significance([2.8], [1.08], against_loss=2.9)["verdict"] == "untestable"
    assert significance([], [])["verdict"] == "untestable"


def test_different_tokenizers_are_not_compared_in_nats(tmp_path: Path) -> None:
    base = make_record(tmp_path / "base")
    cand = make_record(tmp_path / "cand")
    for log in cand.glob("*.log"):
        log.write_text(log.read_text().replace("vocab_size: 8192", "vocab_size: 4096"))
    sig = review_folder(cand, against=base).significance
    assert sig["verdict"] == "untestable" and "vocab 4096 vs 8192" in sig["notes"][-1]


def test_hard_coded_constants_that_contradict_a_hyperparameter(tmp_path: Path) -> None:
    r = review_folder(make_record(tmp_path / "r"))
    (f,) = [f for f in r.findings if f.code == "code.hardcoded_constant"]
    assert f.message == (
        "Rotary(train_seq_len=1024) is hard-coded while the hyperparameter train_seq_len is 2048"
    )
    assert f.evidence == ["train_gpt.py:31"] and f.severity == "info"
