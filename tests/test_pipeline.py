"""`golf train` end to end: a verified artifact, an honest log and provenance."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from golf.cli import app as golf_app
from golf.data.demo import build_demo
from golf.data.shards import Dataset
from golf.engine.evaluate import evaluate, summarize
from golf.formats.artifact import load_model, random_artifact, read_artifact
from golf.spec.config import preset as model_preset
from golf.spec.params import EvalParams
from trainer.cli import register
from trainer.config import TrainConfig

runner = CliRunner()
app = typer.Typer()
register(app)  # its only command, so it runs without naming it (as `python -m trainer`)

SHORT = """
preset = "tiny"
iterations = 40
batch_tokens = 2048
warmup_steps = 4
warmdown_steps = 10
log_every = 5
ttt_tokens = 8192
ttt_batch_seqs = 8
gptq_seqs = 8

[model]
num_layers = 2
ve_layers = [0, 1]
xsa_last_n = 2
"""


def golf_train(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, list(map(str, args)))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def short_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "short.toml"
    path.write_text(SHORT)
    return path


@pytest.fixture(scope="module")
def trained(short_config: Path, demo_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("trained")
    code, stdout, _ = golf_train(
        "--config", short_config, "--data", demo_data, "--out", folder / "a.golf",
        "--log", folder / "run.jsonl", "--code-bytes", 5000,
    )  # fmt: skip
    assert code == 0
    return folder, stdout


def test_config_file_sets_recipe_and_model(short_config: Path) -> None:
    cfg = TrainConfig.load(short_config)
    assert cfg.iterations == 40 and cfg.batch_tokens == 2048 and cfg.seq_len == 256
    assert cfg.model.num_layers == 2 and cfg.model.model_dim == 64


def test_artifact_is_written_verified_and_within_budget(trained) -> None:
    folder, stdout = trained
    artifact = read_artifact(folder / "a.golf")
    assert artifact.config.num_layers == 2 and artifact.metadata.code_bytes == 5000
    size = f"{artifact.n_bytes:,} artifact + 5,000 code = {artifact.n_bytes + 5000:,} bytes"
    assert size in stdout and "fits" in stdout
    prov = artifact.metadata.provenance
    assert prov.seeds == (1337,) and prov.ttt_data_source == "train" and prov.ttt_epochs == 1
    assert prov.gptq_calibration_source == "train"
    assert json.loads(prov.notes["recipe"])["iterations"] == 40


def test_log_has_every_stage_and_a_falling_loss(trained, demo_data: Path) -> None:
    folder, _ = trained
    records = [json.loads(line) for line in (folder / "run.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["stage"] == "train"]
    assert [r["step"] for r in steps] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.5
    summary = records[-1]
    assert summary["stage"] == "summary" and summary["train"]["steps"] == 40
    assert summary["ttt"]["loss_after"] < summary["ttt"]["loss_before"]
    # The verify stage's number is the artifact's real plain val_bpb.
    dataset = Dataset.open(demo_data)
    model = load_model(read_artifact(folder / "a.golf"))
    params = EvalParams(seq_len=256, batch_windows=16)
    tokens, lut = dataset.val_tokens(256), dataset.byte_lut(1024)
    bpb = summarize(evaluate(model, tokens, lut, "plain", params))["val_bpb"]
    assert summary["verify"]["val_bpb_artifact"] == bpb


def test_ttt_on_val_is_recorded_and_inspect_shows_it(
    short_config: Path, demo_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "val.golf"
    code, _, _ = golf_train(
        "--config", short_config, "--data", demo_data, "--out", out, "--ttt-data", "val",
        "--iterations", 12, "--rtn",
    )  # fmt: skip
    assert code == 0
    shown = runner.invoke(golf_app, ["inspect", str(out), "--json"])
    provenance = json.loads(shown.stdout)["provenance"]
    assert provenance["ttt_data_source"] == "val"
    assert provenance["gptq_calibration_source"] is None  # --rtn


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "tiny", "--config", "x.toml"], "exactly one of --preset and --config"),
        (["--preset", "huge"], "unknown training preset 'huge'"),
        (["--preset", "tiny", "--ttt-data", "test"], "ttt_data"),
        (["--preset", "tiny", "--iterations", "0"], "iterations"),
        (["--config", "missing.toml"], "cannot read"),
    ],
)
def test_bad_recipes_are_one_line_errors(args, message, demo_data: Path, tmp_path: Path) -> None:
    code, stdout, stderr = golf_train(*args, "--data", demo_data, "--out", tmp_path / "x.golf")
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and message in stderr


def unigram_bpb(dataset: Dataset, seq_len: int) -> float:
    """bpb of the val tokens' own unigram distribution (an optimistic unigram model)."""
    tokens = dataset.val_tokens(seq_len).astype(np.int64)
    targets = tokens[1:]
    counts = np.bincount(targets, minlength=dataset.vocab_size)
    p = counts[counts > 0] / targets.size
    nll = -float(np.sum(counts[counts > 0] * np.log(p)))
    lut = dataset.byte_lut(dataset.vocab_size)
    n_bytes = int(lut.count(torch.from_numpy(tokens[:-1]), torch.from_numpy(targets)).sum())
    return nll / math.log(2) / n_bytes


@pytest.mark.slow
def test_tiny_preset_learns_and_gptq_beats_rtn(tmp_path: Path) -> None:
    """The full tiny recipe on the full demo data (about three minutes on 2 cores)."""
    data = tmp_path / "data"
    build_demo(data)
    dataset = Dataset.open(data)
    out = tmp_path / "tiny.golf"
    code, _, _ = golf_train(
        "--preset", "tiny", "--data", data, "--out", out, "--log", tmp_path / "run.jsonl"
    )
    assert code == 0
    summary = json.loads((tmp_path / "run.jsonl").read_text().splitlines()[-1])
    verify = summary["verify"]
    random_path = tmp_path / "random.golf"
    random_artifact(model_preset("tiny"), dataset.tokenizer_sha256, 1024, random_path)
    params = EvalParams(seq_len=256, batch_windows=32)
    tokens, lut = dataset.val_tokens(256), dataset.byte_lut(1024)
    random_bpb = summarize(
        evaluate(load_model(read_artifact(random_path)), tokens, lut, "plain", params)
    )["val_bpb"]
    assert verify["val_bpb_artifact"] < random_bpb - 1.0
    assert verify["val_bpb_artifact"] < unigram_bpb(dataset, 256)
    assert verify["quant_gap"] < verify["rtn_gap"]

    result = runner.invoke(
        golf_app,
        ["eval", str(out), "--data", str(data), "--seq-len", "256", "--json",
         "--protocol", "plain", "--protocol", "sliding", "--protocol", "slot"],
    )  # fmt: skip
    bpb = {r["protocol"]: r["val_bpb"] for r in json.loads(result.stdout)["reports"]}
    assert bpb["slot"] < bpb["sliding"] < bpb["plain"]


def test_off_a_terminal_train_prints_plain_progress_lines() -> None:
    """Piped, `golf train` prints a line per ~5 % of a stage or per 30 s, not a bar at the end."""
    import io

    from rich.console import Console

    from trainer.console import PlainReporter

    buffer = io.StringIO()
    now = [0.0]
    reporter = PlainReporter(Console(file=buffer, width=80), now=lambda: now[0])
    reporter.start("train", 1000)
    for step in range(1, 1001):
        now[0] += 0.01
        reporter.advance("train", step, {"loss": 5.0 - step / 1000, "tok_s": 1e4})
    reporter.start("ttt", 2)
    now[0] += 45  # a slow first epoch: a line by time, not by percent
    reporter.advance("ttt", 1, {"loss": 3.0})
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "train: started, 1,000 steps"
    train = [line for line in lines if line.startswith("train ")]
    assert len(train) == 20 and train[-1].startswith("train 1,000/1,000 (100%) 0:00:10")
    assert "loss 4" in train[0] and all(len(line) > 0 for line in lines)
    assert lines[-2:] == ["ttt: started, 2 steps", "ttt 1/2 (50%) 0:00:45  loss 3"]
