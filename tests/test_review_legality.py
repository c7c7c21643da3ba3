"""golf.review.legality on samples written to the records' shapes: each heuristic fires
on its pattern and stays quiet on the legal counterpart."""

from __future__ import annotations

import pytest
import review_samples as S

from golf.record.parse import parse_python
from golf.review.legality import is_val_name, legality_findings


def found(code: str, hparams: dict | None = None) -> dict[str, str]:
    """code → severity of each heuristic that matched."""
    tree = parse_python(code, "train_gpt.py")
    return {
        f.code.removeprefix("legality."): f.severity
        for f in legality_findings(tree, code.splitlines(), "train_gpt.py", hparams)
    }


@pytest.mark.parametrize("code", [S.LEGAL_TTT, S.LEGAL_PHASED, S.FULL_BLEND, S.GPTQ_ON_TRAIN,
                                  S.WARMUP_RANDOM, S.SMEAR_BOS_FIXED, S.SMEAR_STREAM,
                                  S.HEADER + S.SCORE_FN, S.DRIVER_COUNTS_SHARDS])  # fmt: skip
def test_legal_samples_are_not_flagged(code: str) -> None:
    assert found(code) == {}


def test_pre_quant_ttt_on_val_is_flagged_at_its_call() -> None:
    tree = parse_python(S.PRE_QUANT_TTT, "train_gpt.py")
    (f,) = legality_findings(tree, S.PRE_QUANT_TTT.splitlines(), "train_gpt.py")
    assert f.code == "legality.pre_quant_ttt_on_val" and f.severity == "flag" and f.heuristic
    assert "conditions 3 (score before update) and 4 (single pass)" in f.condition
    assert f.evidence == [
        "train_gpt.py:37: state = pre_quant_ttt(args, model, val_tokens)",
        "train_gpt.py:39: print(pre, eval_windows(args, model, val_tokens, 64))",
    ]


def test_slot_is_flagged_with_its_delta_step_and_score_lines() -> None:
    tree = parse_python(S.SLOT, "train_gpt.py")
    (f,) = legality_findings(tree, S.SLOT.splitlines(), "train_gpt.py")
    assert f.code == "legality.slot_per_batch_delta" and f.severity == "flag"
    lines = [e.split(":")[1] for e in f.evidence]
    assert lines == ["17", "24", "28"]  # delta, backward, loss_sum +=


def test_switched_off_code_is_info_and_the_log_dump_switches_it_on() -> None:
    assert found(S.SLOT, {"slot_enabled": False}) == {"slot_per_batch_delta": "info"}
    assert found(S.SLOT, {"slot_enabled": True}) == {"slot_per_batch_delta": "flag"}


def test_gold_token_blend() -> None:
    assert found(S.GOLD_BLEND) == {"gold_token_blend": "flag"}


def test_best_of_two_passes() -> None:
    assert found(S.BEST_OF_TWO) == {"second_scoring_pass": "flag"}


def test_gptq_calibrated_on_val() -> None:
    assert found(S.GPTQ_ON_VAL) == {"gptq_calibration_on_val": "flag"}


def test_training_data_read_by_a_scorer_not_by_the_trainer() -> None:
    tree = parse_python(S.TRAIN_AT_EVAL, "train_gpt.py")
    (f,) = legality_findings(tree, S.TRAIN_AT_EVAL.splitlines(), "train_gpt.py")
    assert f.code == "legality.train_data_at_eval"
    assert [e.split(":")[1] for e in f.evidence] == ["11"]  # not the trainer's loader (line 19)


def test_warmup_on_val() -> None:
    assert found(S.WARMUP_BASE) == {"ttt_warmup_on_val": "flag"}
    assert found(S.WARMUP_THROWAWAY) == {"ttt_warmup_on_val_throwaway": "warn"}


def test_smeargate_across_bos_only_in_document_isolated_code() -> None:
    assert found(S.SMEAR) == {"smeargate_across_bos": "warn"}


def test_val_names() -> None:
    assert all(map(is_val_name, ["val_tokens", "val_data", "valTokens", "x_val", "validation"]))
    assert not any(map(is_val_name, ["val_loss", "val_bpb", "val_batch_size", "interval",
                                     "eval_val", "value"]))  # fmt: skip
