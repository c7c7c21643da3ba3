"""The `golf` command end to end: its JSON is a contract, its errors are one line."""

import json
from pathlib import Path

import pytest
import torch
from test_import_pg import HPARAMS, _config, _ptz, _reference_quantize, _weights
from typer.testing import CliRunner

from golf.cli import app
from golf.data.shards import Dataset
from golf.engine.evaluate import evaluate, summarize
from golf.formats.artifact import load_model, random_artifact, read_artifact
from golf.spec.config import preset
from golf.spec.params import EvalParams

runner = CliRunner()
SMALL = ["--seq-len", "64", "--stride", "32", "--batch-windows", "8", "--max-windows", "24"]
REPORT_KEYS = {
    "windows_total",
    "wall_s",
    "projected_8xh100_s",
    "partial",
    "ci95",
    "protocol",
    "val_bpb",
    "val_loss",
    "tokens",
    "bytes",
    "windows",
    "elapsed_s",
    "params",
    "artifact_sha256",
    "dataset_sha256",
    "engine",
    "flags",
    "audit",
    "byte_source",
}


def golf(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def artifact(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "tiny.golf"
    code, stdout, _ = golf("artifact", "random", "--data", demo_data, "--out", path, "--seed", 3)
    assert code == 0 and str(path) in stdout
    return path


def test_data_demo_builds_a_dataset_that_opens(tmp_path: Path) -> None:
    code, stdout, _ = golf("data", "demo", "--out", tmp_path, "--max-chars", 200_000)
    assert code == 0
    dataset = Dataset.open(tmp_path)
    assert dataset.vocab_size == 1024 and dataset.sha256 in stdout
    assert dataset.val_tokens().size > 1000 and dataset.train_tokens().size > 1000


def test_inspect_json_describes_the_artifact(artifact: Path, demo_data: Path) -> None:
    code, stdout, _ = golf("inspect", artifact, "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["sha256"] == read_artifact(artifact).sha256
    assert summary["tokenizer_sha256"] == Dataset.open(demo_data).tokenizer_sha256
    assert summary["config"] == preset("tiny").model_dump(mode="json")
    assert summary["verdict"] == "fits" and summary["artifact_bytes"] == artifact.stat().st_size
    assert summary["provenance"]["seeds"] == [3]


def test_inspect_table_names_the_verdict(artifact: Path) -> None:
    code, stdout, _ = golf("inspect", artifact)
    assert code == 0 and "fits" in stdout and "4L d64" in stdout
    assert "seeds 3 · no TTT · round-to-nearest · source: random-init" in stdout


def test_eval_json_reports_equal_a_direct_evaluation(artifact: Path, demo_data: Path) -> None:
    names = ["plain", "sliding", "slot", "slot-causal"]
    protocol_args = [a for name in names for a in ("--protocol", name)]
    code, stdout, _ = golf("eval", artifact, "--data", demo_data, *protocol_args, *SMALL, "--json")
    assert code == 0
    reports = json.loads(stdout)["reports"]
    assert [r["protocol"] for r in reports] == names

    dataset = Dataset.open(demo_data)
    model = load_model(read_artifact(artifact))
    lut = dataset.byte_lut(1024)
    tokens = dataset.val_tokens(64)
    for report in reports:
        assert set(report) == REPORT_KEYS
        assert report["artifact_sha256"] == read_artifact(artifact).sha256
        assert report["dataset_sha256"] == dataset.sha256
        assert report["elapsed_s"] > 0
        stride = 64 if report["protocol"] == "plain" else 32
        assert report["params"]["stride"] == stride and report["params"]["seq_len"] == 64
        params = EvalParams(seq_len=64, stride=stride, batch_windows=8, max_windows=24)
        expected = summarize(evaluate(model, tokens, lut, report["protocol"], params))
        assert {k: report[k] for k in expected} == expected
    by_name = {r["protocol"]: r for r in reports}
    assert by_name["plain"]["tokens"] == 24 * 64
    assert by_name["sliding"]["tokens"] == 64 + 23 * 32
    assert by_name["slot"]["val_bpb"] < by_name["sliding"]["val_bpb"]


def test_eval_table_has_a_row_per_protocol_and_no_deltas_when_partial(
    artifact: Path, demo_data: Path
) -> None:
    code, stdout, _ = golf(
        "eval", artifact, "--data", demo_data, "--protocol", "sliding", "--protocol", "slot",
        *SMALL, "--slot-steps", "4",
    )  # fmt: skip
    assert code == 0
    rows = [line for line in stdout.splitlines() if "sliding" in line or " slot " in line]
    assert len(rows) == 2 and all("│     — │" in row for row in rows)  # partial: no Δ


def test_audit_separates_causal_from_standard_slot(artifact: Path, demo_data: Path) -> None:
    window = ["--seq-len", "48", "--stride", "16", "--batch-windows", "4", "--samples", "3"]
    results = {}
    for name in ("sliding", "slot-causal", "slot"):
        code, stdout, _ = golf(
            "audit", "causality", artifact, "--data", demo_data, "--protocol", name, *window,
            "--json",
        )  # fmt: skip
        assert code == 0
        results[name] = json.loads(stdout)
        assert results[name]["windows_tested"] == 3 and results[name]["pairs_tested"] > 0
    for causal in ("sliding", "slot-causal"):
        assert results[causal]["violations"] == 0
        assert results[causal]["within_window_rate"] == results[causal]["cross_window_rate"] == 0
    assert results["slot"]["violations"] > 0 and results["slot"]["violation_rate"] > 0
    assert results["slot"]["within_window_rate"] > 0.9
    assert results["slot"]["cross_window_rate"] == 0
    code, stdout, _ = golf(
        "audit", "causality", artifact, "--data", demo_data, "--protocol", "slot", *window
    )  # fmt: skip
    slot = results["slot"]
    assert code == 0 and stdout.rstrip().endswith("→ NOT causal")
    assert (
        f"within the flipped window {slot['within_window_violations']} of "
        f"{slot['within_window_pairs']} (rate {slot['within_window_rate']:.4f})"
    ) in stdout
    assert f"in its batch mates 0 of {slot['cross_window_pairs']:,} (rate 0.0000)" in stdout
    # Every --protocol is audited (not only the last); one window a batch has no batch
    # mates to test: n/a, not "0 of 0".
    alone = [*window[:4], "--batch-windows", "1", "--samples", "3"]
    code, stdout, _ = golf(
        "audit", "causality", artifact, "--data", demo_data, "--protocol", "slot",
        "--protocol", "sliding", *alone,
    )  # fmt: skip
    lines = stdout.strip().splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == ["slot", "sliding"]
    assert all("in its batch mates n/a (nothing to test)" in line for line in lines)


def test_import_pg_rewrites_a_reference_artifact(tmp_path: Path, demo_data: Path) -> None:
    config = _config()
    obj = _reference_quantize(_weights(config), False, config.num_layers)
    ptz, hparams = tmp_path / "final_model.int6.ptz", tmp_path / "hparams.json"
    ptz.write_bytes(_ptz(obj))
    hparams.write_text(json.dumps(HPARAMS))
    out = tmp_path / "imported.golf"
    tokenizer = demo_data / "tokenizer.model"
    code, stdout, _ = golf(
        "import-pg", ptz, "--hparams", hparams, "--tokenizer", tokenizer, "--out", out,
        "--code-bytes", 1234,
    )  # fmt: skip
    assert code == 0 and "fits" in stdout
    imported = read_artifact(out)
    assert imported.config == config and imported.metadata.code_bytes == 1234
    assert imported.metadata.tokenizer.sha256 == Dataset.open(demo_data).tokenizer_sha256
    original = obj["w"]["blocks.0.attn.c_q.weight.q"].float()
    scale = obj["w"]["blocks.0.attn.c_q.weight.scale"].float()[:, None]
    assert torch.equal(imported.dequantize()["blocks.0.attn.c_q.weight"], original * scale)


def _hostile_hparams(tmp_path: Path) -> list[str]:
    bad = tmp_path / "hparams.json"
    bad.write_text("{not json")
    return ["import-pg", str(tmp_path / "x.ptz"), "--hparams", str(bad)]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown protocol", "unknown protocol 'slot-acausal'"),
        ("bad stride", "stride"),
        ("bad plan", "plan"),
        ("corrupt artifact", "not an xz stream"),
        ("missing artifact", "cannot read"),
        ("wrong tokenizer", "tokenizer sha256"),
        ("missing data", "dataset folder not found"),
        ("bad device", "device"),
        ("bad hparams", "is not json"),
        ("absent gpu", "not available"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    case: str, message: str, artifact: Path, demo_data: Path, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.golf"
    corrupt.write_bytes(b"hello, I am not an artifact")
    foreign = tmp_path / "foreign.golf"
    random_artifact(preset("tiny"), "0" * 64, 1024, foreign)
    eval_ = ["eval", str(artifact), "--data", str(demo_data), *SMALL]
    args = {
        "unknown protocol": [*eval_, "--protocol", "slot-acausal"],
        "bad stride": [*eval_, "--protocol", "sliding", "--stride", "0"],
        "bad plan": [*eval_, "--protocol", "sliding", "--plan", "sideways"],
        "corrupt artifact": ["inspect", str(corrupt)],
        "missing artifact": ["inspect", str(tmp_path / "nope.golf")],
        "wrong tokenizer": ["eval", str(foreign), "--data", str(demo_data), "--protocol", "plain"],
        "missing data": [
            "eval", str(artifact), "--data", str(tmp_path / "no"), "--protocol", "plain",
        ],
        "bad device": [*eval_, "--protocol", "plain", "--device", "warp-drive"],
        "absent gpu": [*eval_, "--protocol", "plain", "--device", "cuda:99"],
        "bad hparams": [
            *_hostile_hparams(tmp_path), "--tokenizer", str(demo_data / "tokenizer.model"),
            "--out", str(tmp_path / "y.golf"),
        ],
    }[case]  # fmt: skip
    code, stdout, stderr = golf(*args)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1
    assert message in stderr.lower()


class FakeEntryPoint:
    def __init__(self, name: str, error: ImportError) -> None:
        self.name, self.value, self.error = name, f"{name}.cli:register", error

    def load(self) -> None:
        raise self.error


def test_a_layer_left_out_is_named_in_help_not_warned_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from golf import cli as golf_cli

    monkeypatch.setattr(golf_cli.app.info, "epilog", None)
    missing = ModuleNotFoundError("No module named 'ray'", name="ray")
    broken = ImportError("cannot import name 'x' from 'trainer.config'")
    points = [FakeEntryPoint("serve", missing), FakeEntryPoint("train", broken)]
    monkeypatch.setattr(golf_cli, "entry_points", lambda group: points)
    golf_cli._load_plugins()
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith("warning: `golf` commands of train.cli:register are unavailable")
    assert golf_cli.app.info.epilog == "Not installed: serve (pip install 'golf-eval\\[service]')."
    code, stdout, _ = golf("--help")
    assert code == 0 and "Not installed: serve (pip install 'golf-eval[service]')." in stdout


def test_a_partial_eval_says_so_and_gives_no_delta_across_different_targets(
    artifact: Path, demo_data: Path
) -> None:
    code, stdout, _ = golf(
        "eval", artifact, "--data", demo_data, "--protocol", "plain", "--protocol", "sliding",
        *SMALL,
    )  # fmt: skip
    assert code == 0
    assert "PARTIAL RUN: scored only the first windows (24 of " in stdout
    assert "no Δ: a partial run" in stdout
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in stdout.splitlines()]
    rows = [row for row in cells if row and row[0] in ("plain", "sliding")]
    assert len(rows) == 2 and all(row[4] == "—" for row in rows), stdout  # the Δ column


def test_a_max_windows_covering_the_whole_val_is_not_partial(
    artifact: Path, demo_data: Path
) -> None:
    """Partial is decided from the counts: max_windows past the plan's end scores the
    whole val, so no PARTIAL RUN and a Δ; each score carries its within-run CI."""
    whole = ["--seq-len", "256", "--stride", "256", "--batch-windows", "64"]
    code, stdout, _ = golf(
        "eval", artifact, "--data", demo_data, "--protocol", "plain", "--protocol", "sliding",
        *whole, "--max-windows", "999999999", "--json",
    )  # fmt: skip
    assert code == 0
    reports = json.loads(stdout)["reports"]
    n_targets = Dataset.open(demo_data).val_tokens(256).size - 1
    for r in reports:
        assert r["windows"] == r["windows_total"] == -(-n_targets // 256)
        assert r["partial"] is False and r["tokens"] == n_targets
        lo, hi = r["ci95"]
        assert lo < r["val_bpb"] < hi and hi - lo < 0.5
    code, stdout, _ = golf(
        "eval", artifact, "--data", demo_data, "--protocol", "plain", "--protocol", "sliding",
        *whole, "--max-windows", "999999999",
    )  # fmt: skip
    assert code == 0 and "PARTIAL" not in stdout and "+0.000000" in stdout
    assert "95% CI: within-run" in stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello, I am a text file\n", "not a .golf artifact (not an xz stream"),
        (b"PK\x03\x04" + b"\0" * 60, "convert it with `golf import-pg`"),
        (b"\x80\x04" + b"\0" * 60, "convert it with `golf import-pg`"),
    ],
)
def test_a_file_that_is_no_artifact_is_named_with_what_to_do(
    content: bytes, words: str, tmp_path: Path
) -> None:
    path = tmp_path / "model.ptz"
    path.write_bytes(content)
    code, stdout, stderr = golf("inspect", path)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(f"error: {path}: ") and words in stderr


def test_flags_show_no_type_in_any_help() -> None:
    """typer writes `--json <bool>`; golf's flags read as flags in every command's help."""
    from importlib.metadata import entry_points

    import typer

    plugins = typer.Typer()
    for ep in entry_points(group="golf.commands"):
        ep.load()(plugins)
    core = ["eval", "inspect", "audit causality", "import-pg", "data demo"]
    layers = ["submit", "watch", "report", "jobs", "datasets", "cancel", "serve", "train"]
    for command in core + layers:
        result = runner.invoke(app if command in core else plugins, [*command.split(), "--help"])
        assert result.exit_code == 0, command
        assert "<bool>" not in result.stdout and "--help" in result.stdout, command


def test_eval_save_writes_the_report_and_windows_that_compare_pairs(
    artifact: Path, demo_data: Path, tmp_path: Path
) -> None:
    from clients.compare import compare_sides, load_side

    args = ["eval", artifact, "--data", demo_data, "--protocol", "sliding", *SMALL]
    code, stdout, stderr = golf(*args, "--save", tmp_path / "run", "--json")
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert json.loads((tmp_path / "run" / "report.json").read_text()) == doc
    assert doc["artifact"]["id"] == read_artifact(artifact).sha256
    assert doc["artifact"]["verdict"] == "fits" and doc["flags"] == []
    assert doc["dataset"] == {"name": demo_data.name, "sha256": Dataset.open(demo_data).sha256}
    lines = (tmp_path / "run" / "windows.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["window"] for r in records] == list(range(24))
    assert {r["protocol"] for r in records} == {"sliding"}
    (report,) = doc["reports"]
    assert sum(r["tokens"] for r in records) == report["tokens"]
    assert sum(r["bytes"] for r in records) == report["bytes"]
    # The same run twice pairs window by window: Δ 0 with a CI of exactly [0, 0].
    code, _, _ = golf(*args, "--save", tmp_path / "again", "-f", "md")
    assert code == 0
    sides = [load_side(str(tmp_path / d), n, None) for d, n in (("run", "A"), ("again", "B"))]
    (row,) = compare_sides(sides, None, 2000, 0)["rows"]
    assert row["delta_bpb"] == 0.0 and row["ci95"] == [0.0, 0.0] and row["paired"]


def test_eval_format_md_is_the_report_markdown(artifact: Path, demo_data: Path) -> None:
    from golf.spec.tables import report_markdown

    args = ["eval", artifact, "--data", demo_data, "--protocol", "sliding", *SMALL]
    code, stdout, _ = golf(*args, "-f", "md")
    assert code == 0
    assert stdout.splitlines()[2].startswith("| protocol | val_bpb | 95% CI | Δ bpb |")
    assert stdout.rstrip().endswith(
        "95% CI: within-run (bootstrap over this run's windows), not seed variance"
    )
    assert "local `golf eval` · artifact" in stdout and "max_windows 24" in stdout
    doc = json.loads(golf(*args, "--json")[1])
    expected = report_markdown(doc, demo_data.name)
    assert stdout.split("| sliding |")[0] == expected.split("| sliding |")[0]
    code, _, stderr = golf(*args, "--json", "-f", "md")
    assert code == 2 and "--json and --format md disagree" in stderr


def test_eval_ttt_reports_its_audit(artifact: Path, demo_data: Path) -> None:
    """A TTT report carries the stream audit's verdict and sample size, a sliding one none."""
    small = [*SMALL, "--max-windows", "6", "--ttt-chunk-tokens", "128", "--ttt-audit-tokens", "256"]
    args = ["--protocol", "sliding", "--protocol", "ttt"]
    code, stdout, _ = golf("eval", artifact, "--data", demo_data, *args, *small, "--json")
    assert code == 0
    sliding, ttt = json.loads(stdout)["reports"]
    assert sliding["audit"] is None and sliding["flags"] == []
    audit = ttt["audit"]
    assert audit["verdict"] == "score-first" and audit["violations"] == 0
    assert audit["flips"] == 2 and audit["pairs_tested"] > 0 and audit["tokens"] == 257


def test_audit_causality_of_a_chain_protocol(artifact: Path, demo_data: Path) -> None:
    """`golf audit causality --protocol ttt-lora` runs the stream flip audit."""
    args = ["--protocol", "ttt-lora", "--samples", "2", "--seq-len", "64"]
    small = ["--lora-rank", "2", "--ttt-audit-tokens", "256"]
    code, stdout, _ = golf(
        "audit", "causality", artifact, "--data", demo_data, *args, *small, "--json"
    )
    assert code == 0
    report = json.loads(stdout)
    assert report["verdict"] == "score-first" and report["flips"] == 2
    assert report["pairs_tested"] > 0 and report["violations"] == 0


def test_eval_json_carries_code_bytes_environment_and_digest(
    artifact: Path, demo_data: Path, tmp_path: Path
) -> None:
    """`--code FILE` counts the file's bytes in the budget; without it the size says the
    code size is not declared; the document has the environment and digest a job's has."""
    from golf import __version__

    code_file = tmp_path / "train_gpt.py"
    code_file.write_bytes(b"print('golf')\n" * 1000)
    args = ["eval", artifact, "--data", demo_data, "--protocol", "sliding", *SMALL]
    code, stdout, _ = golf(*args, "--code", code_file, "--json")
    assert code == 0
    doc = json.loads(stdout)
    art = doc["artifact"]
    assert art["code_bytes"] == 14_000 and art["code_declared"] is True
    assert art["total_bytes"] == art["artifact_bytes"] + 14_000 and art["verdict"] == "fits"
    env = doc["environment"]
    assert env["golf_eval"] == __version__ and env["device"] == "cpu" and env["workers"] == 1
    assert len(doc["digest"]) == 64
    code, stdout, _ = golf(*args, "--json")
    again = json.loads(stdout)
    assert again["digest"] == doc["digest"]  # the code file is no input of the numbers
    assert again["artifact"]["code_declared"] is False
    code, stdout, _ = golf(*args, "-f", "md")
    assert "code size not declared" in stdout
    code, _, stderr = golf(*args, "--code", tmp_path / "missing.py")
    assert code == 2 and "--code" in stderr and "missing.py" in stderr
    code, stdout, _ = golf("inspect", artifact)
    assert "code size not declared" in " ".join(stdout.split())
