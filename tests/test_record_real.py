"""golf.record over the official records (only where a checkout exists; CI has none:
docs/REVIEW.md documents the run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from golf.record import read_record

BOARD = Path("/work/pg/official/records/track_10min_16mb")
pytestmark = pytest.mark.skipif(not BOARD.is_dir(), reason="no official records checkout")


def test_every_record_reads_and_parses() -> None:
    folders = sorted(p for p in BOARD.iterdir() if p.is_dir())
    assert len(folders) == 46
    parsed = 0
    for folder in folders:
        rec = read_record(folder)
        if rec.source is None:
            assert folder.name == "2026-03-19_int6_STE QAT_ MLP_bigram _U_Net"  # a log only
            continue
        rec.tree()
        hp = rec.hparams()
        assert set(hp.unresolved) <= {"run_id", "logfile"}, folder.name
        parsed += 1
    assert parsed == 45


def test_stub_and_its_sizes() -> None:
    rec = read_record(BOARD / "2026-04-06_SP8192_HessianSDClip_ProgressiveRecurrence")
    assert rec.source.kind == "stub"
    assert (rec.source.submitted_bytes, rec.source.target_bytes) == (74, 80055)
    assert {r.total.bytes for r in rec.logs} == {16054963, 16059704, 16058494}


def test_rotary_constant_in_sp1024_records() -> None:
    rec = read_record(BOARD / "2026-03-22_11L_EMA_GPTQ-lite_warmdown3500_QAT015_1.1233")
    assert rec.hparams().values["train_seq_len"] == 2048
    assert {a.value for a in rec.literal_call_args(["Rotary"]) if a.keyword == "train_seq_len"} == {
        1024
    }
