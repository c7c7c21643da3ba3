"""Complete the record harness's golden fixtures with golf's side, and check them.

    PYTHONPATH=$PWD .venv/bin/python scripts/board_fixtures.py \
        [--official /work/pg/official/records/track_10min_16mb] [--fixtures tests/fixtures/records]

For each `FIXTURES/<folder>/record.json` the harness wrote (scripts/record_harness), this
reads the official record folder with golf.record — code defaults by AST, overridden by
the harness's environment (only the variables that record reads, as `--set`) — and
writes `facts.json` (golf.formats.board.RecordFacts: family, tensor-blind config fields,
their origins). Then it imports the fixture's artifact with those facts, scores each of
the record's checks (printed tag -> protocol, plan) with `golf eval`'s runner in fp32 and
writes `result.json`: the record's printed val_bpb, golf's, and |Δ|. It prints one line
per check. The tests (tests/test_board_golden.py) redo the import and the scoring; the
coverage table (scripts/coverage.py) reads `result.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from golf.engine.runner import EvalInputs, run_protocol
from golf.formats.board import RecordFacts, import_artifact, read_facts
from golf.spec.errors import GolfError
from golf.spec.params import EvalParams

DEFAULT_OFFICIAL = Path("/work/pg/official/records/track_10min_16mb")
DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "records"


def data_dir(fixtures: Path, record: dict) -> tuple[Path, Path]:
    """The shared tiny dataset of a fixture (with its byte sidecar where the record reads
    one: `sp<V>-caseops`) and its tokenizer."""
    data = fixtures / "_data" / record["data"].get("dir", f"sp{record['data']['vocab_size']}")
    return data, data / record["data"]["tokenizer"]


def overrides_for(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """The harness's environment, restricted to the variables the record's code reads."""
    from golf.record import read_record

    read = set(read_record(folder).code_hparams().env.values())
    return {k: v for k, v in env.items() if k in read}


CHECK_KEYS = ("tag", "protocol", "plan", "seq_len", "stride")


def check_params(check: dict) -> EvalParams:
    """A check's EvalParams in fp32: its plan and window, plus the EvalParams fields the
    harness table gave it (doc_bounded, doc_max_len for the packed plain eval)."""
    extra = {k: v for k, v in check.items() if k not in CHECK_KEYS}
    return EvalParams(
        seq_len=check["seq_len"],
        stride=check["stride"] if check["protocol"] != "plain" else None,
        plan=check["plan"],
        precision="fp32",
        batch_windows=64,
        **extra,
    )


def score(fixture: Path, record: dict, facts: RecordFacts, fixtures: Path) -> list[dict]:
    """golf's numbers for each check of one fixture (fp32, CPU)."""
    data, tokenizer = data_dir(fixtures, record)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "imported.golf"
        imported = import_artifact(
            fixture / record["artifact"]["file"], facts, out, tokenizer=tokenizer
        )
        inputs = EvalInputs.load(str(out), str(data), str(tokenizer))
        rows = []
        for check in record["checks"]:
            params = check_params(check)
            report = run_protocol(inputs, check["protocol"], params)
            printed = record["printed"][check["tag"]]["val_bpb"]
            rows.append(
                {
                    **check,
                    "format": imported.format,
                    "arch": facts.arch,
                    "record_val_bpb": printed,
                    "golf_val_bpb": report.val_bpb,
                    "abs_delta": abs(report.val_bpb - printed),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, default=DEFAULT_OFFICIAL)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("folders", nargs="*", help="only these record folders")
    args = parser.parse_args()
    worst = 0.0
    for record_json in sorted(args.fixtures.glob("*/record.json")):
        fixture = record_json.parent
        if args.folders and fixture.name not in args.folders:
            continue
        record = json.loads(record_json.read_text())
        if not record.get("checks"):  # a family whose own tests hold its checks
            print(f"{record['record']}: no checks in record.json, skipped")
            continue
        folder = args.official / record["record"]
        for stale in ("facts.json", "result.json", "unsupported.json"):
            (fixture / stale).unlink(missing_ok=True)
        try:
            facts = read_facts(folder, overrides_for(folder, record["env"]))
            rows = score(fixture, record, facts, args.fixtures)
        except GolfError as e:  # the record's own artifact, refused: say why, in one line
            why = {"record": record["record"], "error": f"{type(e).__name__}: {e}"}
            (fixture / "unsupported.json").write_text(json.dumps(why, indent=2) + "\n")
            print(f"{record['record']}: not supported: {why['error']}")
            continue
        (fixture / "facts.json").write_text(json.dumps(facts.to_json(), indent=2) + "\n")
        (fixture / "result.json").write_text(json.dumps({"checks": rows}, indent=2) + "\n")
        for row in rows:
            worst = max(worst, row["abs_delta"])
            print(
                f"{record['record']}: {row['protocol']}/{row['plan']} record "
                f"{row['record_val_bpb']:.8f} golf {row['golf_val_bpb']:.8f} "
                f"|Δ| {row['abs_delta']:.2e} ({row['format']}, {row['arch']})"
            )
    print(f"worst |Δ| {worst:.2e}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
