"""Golden fixtures of the official board: golf import + golf eval reproduce the number
each record's own code printed for the same tiny artifact (fp32, CPU).

Each `tests/fixtures/records/<folder>/` holds what the record harness
(scripts/record_harness) captured from running that record's own train_gpt.py tiny — its
artifact, the environment, the printed numbers and which protocol/plan each is — and
`facts.json`, what golf.record read from the record folder (family, tensor-blind config
fields; scripts/board_fixtures.py). No record code is in the repository.

Tolerance: the issue's 1e-5 on val_bpb. The records print 8 decimals (±5e-9) and their
plain eval averages each batch's loss in fp32 before accumulating it (a relative
rounding of ~6e-8 per batch); golf sums per-window fp64 records. Measured |Δ| on these
fixtures: ≤ 2.5e-7 plain, ≤ 1.2e-7 sliding (docs/COVERAGE.md lists each).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from golf.engine.runner import EvalInputs, run_protocol
from golf.formats.board import RecordFacts, import_artifact, read_facts
from golf.spec.params import EvalParams

FIXTURES = Path(__file__).parent / "fixtures" / "records"
OFFICIAL = Path(
    os.environ.get("GOLF_OFFICIAL_RECORDS", "/work/pg/official/records/track_10min_16mb")
)
TOLERANCE = 1e-5
CHECK_KEYS = ("tag", "protocol", "plan", "seq_len", "stride")
CASES = sorted(p.parent.name for p in FIXTURES.glob("*/facts.json"))


def _load(folder: str) -> tuple[Path, dict, RecordFacts]:
    fixture = FIXTURES / folder
    record = json.loads((fixture / "record.json").read_text())
    facts = RecordFacts.from_json(json.loads((fixture / "facts.json").read_text()))
    return fixture, record, facts


def _data(record: dict) -> Path:
    """The fixture's shared tiny dataset (`sp<V>-caseops` carries a byte sidecar)."""
    return FIXTURES / "_data" / record["data"].get("dir", f"sp{record['data']['vocab_size']}")


def _params(check: dict) -> EvalParams:
    """fp32 EvalParams of a check: its window and plan, plus any EvalParams fields the
    harness table added (doc_bounded, doc_max_len: the records' packed plain eval)."""
    extra = {k: v for k, v in check.items() if k not in CHECK_KEYS}
    return EvalParams(
        seq_len=check["seq_len"],
        stride=None if check["protocol"] == "plain" else check["stride"],
        plan=check["plan"],
        precision="fp32",
        batch_windows=64,
        **extra,
    )


def test_there_are_golden_fixtures():
    assert len(CASES) >= 10, CASES


@pytest.mark.parametrize("folder", CASES)
def test_golf_matches_the_records_own_code(folder, tmp_path):
    fixture, record, facts = _load(folder)
    data = _data(record)
    tokenizer = data / record["data"]["tokenizer"]
    imported = import_artifact(
        fixture / record["artifact"]["file"], facts, tmp_path / "a.golf", tokenizer=tokenizer
    )
    assert imported.artifact.metadata.arch == facts.arch
    inputs = EvalInputs.load(str(tmp_path / "a.golf"), str(data), str(tokenizer))
    assert record["checks"], "a fixture without a check tests nothing"
    for check in record["checks"]:
        report = run_protocol(inputs, check["protocol"], _params(check))
        printed = record["printed"][check["tag"]]["val_bpb"]
        assert abs(report.val_bpb - printed) <= TOLERANCE, (check, report.val_bpb, printed)


@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="official records not checked out here")
@pytest.mark.parametrize("folder", CASES)
def test_facts_still_come_from_the_record_folder(folder):
    """golf.record reads the same family and config fields from the real folder."""
    from golf.record import read_record

    _, record, facts = _load(folder)
    official = OFFICIAL / folder
    read = set(read_record(official).code_hparams().env.values())
    sets = {k: v for k, v in record["env"].items() if k in read}
    assert read_facts(official, sets) == facts
