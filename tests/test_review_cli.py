"""`golf review` on constructed folders: markdown, JSON, the board, one-line errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

from record_support import make_record
from typer.testing import CliRunner

from golf.cli import app

runner = CliRunner()


def golf(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_markdown_review_for_a_pr(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "rec", model_bytes=15_999_500)
    code, out, _ = golf("review", folder)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "## golf review: `rec`"
    assert lines[2].startswith("**Verdict: FAIL: seed 42: its log totals 16,000,")
    assert "| fail | size | `size.over_budget_log`: seed 42:" in out
    assert "| 42 | train_seed42.log | 1.08 | 1.08000000 | quantized_ttt_phased |" in out


def test_json_review_and_significance(tmp_path: Path) -> None:
    base = make_record(
        tmp_path / "base", seeds={1: (1.1, 2.9), 2: (1.101, 2.902), 3: (1.099, 2.898)}
    )
    cand = make_record(tmp_path / "cand")
    code, out, _ = golf("review", cand, "--against", base, "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["verdicts"] == {"size": "ok", "claims": "ok", "time": "ok", "legality": "ok"}
    assert doc["significance"]["verdict"] == "significant"
    assert doc["significance"]["improvement_nats"] > 0.1
    assert [s["seed"] for s in doc["seeds"]] == ["42", "314", "999"]


def test_board_table(tmp_path: Path) -> None:
    root = tmp_path / "records"
    make_record(root / "2026-01-01_a", seeds={1: (1.1, 2.9), 2: (1.101, 2.902), 3: (1.099, 2.898)})
    make_record(root / "2026-01-02_b", model_bytes=15_999_500)
    code, out, _ = golf("review", "--board", root)
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("| folder | claimed bpb | seeds | size | time | legality |")
    assert rows[2] == "| 2026-01-01_a | 1.1 | 3/3 | ok | ok | ok | — | — |"
    assert rows[3].startswith(
        "| 2026-01-02_b | 1.08 | 3/3 | fail | ok | ok | significant (Δ +0.1100"
    )
    assert "size.over_budget_log×3" in rows[3]


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    for args, msg in [
        ((), "give a record FOLDER or --board RECORDS_DIR"),
        ((tmp_path / "nope",), "not a folder"),
        ((tmp_path, "--format", "xml"), "--format 'xml'"),
        ((tmp_path, "--against-bpb", "1", "--against-loss", "2"), "at most one of"),
        ((tmp_path, "--set", "novalue"), "KEY=VALUE"),
        ((tmp_path, "--artifact", tmp_path / "a.golf"), "--artifact needs --data"),
    ]:
        code, out, err = golf("review", *args)
        assert code == 2 and out == "", args
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err


def test_one_folder_in_well_under_two_seconds(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "rec")
    start = time.process_time()
    code, _, _ = golf("review", folder)
    assert code == 0 and time.process_time() - start < 2.0


def test_review_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, golf.review, golf.review.command, golf.record; "
        "print(sorted(m for m in ('torch', 'golf.engine', 'golf.audit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dynamic_checks_with_an_artifact(tmp_path: Path, demo_data: Path) -> None:
    art = tmp_path / "tiny.golf"
    code, _, err = golf("artifact", "random", "--data", demo_data, "--out", art, "--seed", 1)
    assert code == 0, err
    folder = make_record(tmp_path / "rec", log_kwargs={"kind": "quantized_sliding_window"})
    args = ["review", folder, "--artifact", art, "--data", demo_data, "--max-windows", "4"]
    code, out, err = golf(*args, "--set", "eval_seq_len=128", "--set", "eval_stride=64",
                          "--format", "json")  # fmt: skip
    assert code == 0, err
    found = {f["code"]: f for f in json.loads(out)["findings"] if f["check"] == "dynamic"}
    assert found["dynamic.causality"]["severity"] == "pass"
    assert "sliding over 4 windows: 0 earlier scored targets moved" in found[
        "dynamic.causality"]["message"]  # fmt: skip
    assert found["dynamic.rescore"]["message"].startswith(
        "golf-eval sliding (first 4 windows): val_bpb "
    )
