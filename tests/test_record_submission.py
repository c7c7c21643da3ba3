"""golf.record.submission: every seen shape of submission.json, unknown fields kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golf.record import RecordError
from golf.record.submission import parse_submission, read_submission


def test_seed_results_shape() -> None:
    s = parse_submission({
        "val_bpb": 1.0835, "val_loss": 2.7995, "val_bpb_std": 0.0005, "seeds": [1337, 42],
        "seed_results": {"1337": {"val_loss": 2.797, "val_bpb": 1.083, "artifact_bytes": 15976275,
                                  "steps": 5178, "ttt_eval_time_s": 525.7}},
        "bytes_total": 15978121, "hardware": "8xH100", "compliance": {"no_slot": True},
        "submission_type": "record",
    })  # fmt: skip
    assert (s.val_bpb, s.val_loss, s.val_bpb_std, s.bytes_total) == (
        1.0835,
        2.7995,
        0.0005,
        15978121,
    )
    assert s.seeds == ["1337", "42"]
    c = s.seed_claim(1337)
    assert (c.val_bpb, c.bytes, c.bytes_key, c.eval_time_s) == (
        1.083,
        15976275,
        "artifact_bytes",
        525.7,
    )
    assert c.fields["steps"] == 5178
    assert s.compliance == {"no_slot": True} and s.submission_type == "record"
    assert s.unknown == {"hardware": "8xH100"}


def test_mean_keys_seeds_mapping_and_list_times() -> None:
    s = parse_submission({
        "mean_val_bpb": 1.1, "std_bpb": 0.001, "artifact_size_bytes": 15_000_000,
        "seeds": {"0": {"val_bpb": 1.09, "bytes_total": 15_000_001, "ttt_time_ms": 293430}},
        "eval_time_seconds": [80, 95.5],
    })  # fmt: skip
    assert (s.val_bpb, s.val_bpb_std, s.bytes_total) == (1.1, 0.001, 15_000_000)
    assert (
        s.key_of["val_bpb"] == "mean_val_bpb" and s.key_of["bytes_total"] == "artifact_size_bytes"
    )
    assert s.seeds == ["0"] and s.per_seed[0].eval_time_s == pytest.approx(293.43)
    assert s.eval_time_s == 95.5 and s.key_of["eval_time_s"] == "eval_time_seconds (max of 2)"


def test_only_val_loss_and_seed_scores() -> None:
    s = parse_submission({"val_loss": 1.14, "seeds": [1, 2], "seed_scores": [1.1, 1.2]})
    assert s.val_bpb is None and s.val_loss == 1.14
    assert [(c.seed, c.val_bpb) for c in s.per_seed] == [("1", 1.1), ("2", 1.2)]


def test_wrong_types_are_ignored_not_errors() -> None:
    s = parse_submission({"val_bpb": "1.1x", "bytes_total": True, "seeds": "x", "compliance": []})
    assert s.val_bpb is None and s.bytes_total is None and s.seeds == [] and s.compliance == {}
    assert s.unknown == {}


def test_numbers_as_strings_and_val_bpb_seeds() -> None:
    s = parse_submission({"val_bpb": "0.9300", "bytes_total": "15560230",
                          "val_bpb_seeds": {"1337": "0.9294", "42": "0.9306"}})  # fmt: skip
    assert (s.val_bpb, s.bytes_total) == (0.93, 15560230)
    assert [(c.seed, c.val_bpb) for c in s.per_seed] == [("1337", 0.9294), ("42", 0.9306)]


def test_renamed_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "submission_ternary.json").write_text(json.dumps({"val_bpb": 1.15}))
    s = read_submission(tmp_path)
    assert s.name == "submission_ternary.json" and s.val_bpb == 1.15


@pytest.mark.parametrize(
    "text, why",
    [("[1, 2]", "expected a JSON object"), ("{", "not JSON"), ("[" * 100_000, "nested|not JSON")],
)
def test_bad_files_are_one_line(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "submission.json").write_text(text)
    with pytest.raises(RecordError, match=why):
        read_submission(tmp_path)
