"""`golf import RECORD_DIR --artifact F`: a folder's code is read, never run.

The record folder here is synthetic (a few lines of our own in the records' style), the
artifact is the NaiveBaseline golden fixture (written by that record's own code).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from golf.cli import app
from golf.formats.artifact import ConfigInvalid, read_artifact
from golf.formats.board import read_facts

FIXTURE = Path(__file__).parent / "fixtures" / "records" / "2026-03-17_NaiveBaseline"
RECORD = json.loads((FIXTURE / "record.json").read_text())
DATA = FIXTURE.parent / "_data" / f"sp{RECORD['data']['vocab_size']}"
TOKENIZER = DATA / RECORD["data"]["tokenizer"]
SHAPE_KEYS = ("NUM_LAYERS", "MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "VOCAB_SIZE")
TINY = [f"{k}={RECORD['env'][k]}" for k in SHAPE_KEYS]

SCRIPT = """
import os
import torch
MARKER = open("{marker}", "w")  # runs only if someone executes this file

class Hyperparameters:
    vocab_size = int(os.environ.get("VOCAB_SIZE", 1024))
    num_layers = int(os.environ.get("NUM_LAYERS", 9))
    model_dim = int(os.environ.get("MODEL_DIM", 512))
    num_heads = int(os.environ.get("NUM_HEADS", 8))
    num_kv_heads = int(os.environ.get("NUM_KV_HEADS", 4))
    logit_softcap = float(os.environ.get("LOGIT_SOFTCAP", 30.0))
    rope_base = float(os.environ.get("ROPE_BASE", {rope_base}))
    seed = int(os.environ.get("SEED", 1337))

class Rotary:
    def __init__(self, dim, base=10000.0):
        self.dim = dim

class MLP:
    def forward(self, x):
        x = torch.relu(self.fc(x))
        return self.proj(x.square())
"""


def make_record(tmp_path: Path, rope_base: str = "10000.0") -> Path:
    folder = tmp_path / "2026-01-01_Synthetic"
    folder.mkdir()
    marker = tmp_path / "executed"
    (folder / "train_gpt.py").write_text(SCRIPT.format(marker=marker, rope_base=rope_base))
    (folder / "submission.json").write_text(json.dumps({"val_bpb": 1.0}))
    return folder


def golf(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_import_names_format_and_family_and_never_runs_the_code(tmp_path):
    folder = make_record(tmp_path)
    out = tmp_path / "a.golf"
    sets = [arg for kv in TINY for arg in ("--set", kv)]
    code, stdout, stderr = golf(
        "import", folder, "--artifact", FIXTURE / "final_model.int8.ptz",
        "--tokenizer", TOKENIZER, "--out", out, *sets,
    )  # fmt: skip
    assert code == 0, stderr
    assert "int8_clean_per_row_v1 + zlib, gpt-relu2" in stdout
    assert "rope_train_seq_len: 1048576 from Rotary never rescales its base" in stderr
    artifact = read_artifact(out)
    assert artifact.metadata.arch == "gpt-relu2"
    assert artifact.config.num_layers == int(RECORD["env"]["NUM_LAYERS"])
    assert artifact.config.model_dim == int(RECORD["env"]["MODEL_DIM"])
    assert artifact.config.rope_dims == 0
    assert artifact.metadata.provenance.notes["format"] == "int8_clean_per_row_v1 + zlib"
    assert not (tmp_path / "executed").exists()


def test_an_undetermined_hyperparameter_is_named(tmp_path):
    folder = make_record(tmp_path, rope_base='os.environ["ROPE_BASE"]')
    with pytest.raises(ConfigInvalid, match="hyperparameter rope_base not determined"):
        read_facts(folder, dict(kv.split("=") for kv in TINY))
    facts = read_facts(folder, {**dict(kv.split("=") for kv in TINY), "ROPE_BASE": "500"})
    assert facts.blind["rope_base"] == 500.0 and facts.overrides["rope_base"] == "500"


def test_an_unknown_set_key_is_refused(tmp_path):
    folder = make_record(tmp_path)
    code, _, stderr = golf(
        "import", folder, "--artifact", FIXTURE / "final_model.int8.ptz",
        "--tokenizer", TOKENIZER, "--out", tmp_path / "x.golf",
        "--set", "NOT_A_KNOB=1",
    )  # fmt: skip
    assert code == 2 and "NOT_A_KNOB" in stderr and "\n" not in stderr.strip()


LEAKY_SCRIPT = """
import os
import torch.nn.functional as F

class Hyperparameters:
    vocab_size = int(os.environ.get("VOCAB_SIZE", 1024))
    logit_softcap = float(os.environ.get("LOGIT_SOFTCAP", 30.0))
    rope_base = float(os.environ.get("ROPE_BASE", 10000.0))
    negative_slope = float(os.environ.get("NEGATIVE_SLOPE", {slope}))

class MLP:
    def __init__(self, dim, mlp_mult, neg_slope=0.5):
        self.neg_slope = neg_slope
    def forward(self, x, up_w, down_w):
        x = F.leaky_relu(F.linear(x, up_w), negative_slope=self.neg_slope)
        return F.linear(x.square(), down_w)

class Block:
    def __init__(self, dim, neg_slope=0.5):
        self.mlp = MLP(dim, 3, neg_slope=neg_slope)

def build(args):
    return Block(512, neg_slope=args.negative_slope)
"""


def _leaky_record(tmp_path: Path, slope: str = "0.5", log: str | None = None) -> Path:
    folder = tmp_path / "2026-01-02_Leaky"
    folder.mkdir(parents=True)
    (folder / "train_gpt.py").write_text(LEAKY_SCRIPT.format(slope=slope))
    if log is not None:
        (folder / "train_seed1.log").write_text(log)
    return folder


def test_the_leaky_slope_is_the_resolved_hyperparameter(tmp_path):
    """03-29's MLP takes its slope from NEGATIVE_SLOPE: the code's default 0.5 is golf's
    family; the same code run at another slope (log dump or --set) is refused by name."""
    assert read_facts(_leaky_record(tmp_path)).arch == "gpt-sp1024"
    with pytest.raises(ConfigInvalid, match=r"LeakyReLU\(0.3\)² \(slope from negative_slope"):
        read_facts(_leaky_record(tmp_path / "a"), {"NEGATIVE_SLOPE": "0.3"})
    with pytest.raises(ConfigInvalid, match=r"LeakyReLU\(0.25\)².*\(code\)"):
        read_facts(_leaky_record(tmp_path / "b", slope="0.25"))
    dump = "Hyperparameters:\n  negative_slope: 0.75\n====\n"
    with pytest.raises(ConfigInvalid, match=r"LeakyReLU\(0.75\)².*\(log\)"):
        read_facts(_leaky_record(tmp_path / "c", log=dump))
    facts = read_facts(_leaky_record(tmp_path / "d", slope="0.25"), {"NEGATIVE_SLOPE": "0.5"})
    assert facts.arch == "gpt-sp1024" and facts.overrides == {"negative_slope": "0.5"}
    folder = _leaky_record(tmp_path / "e", slope='os.environ["SLOPE"]')
    with pytest.raises(ConfigInvalid, match=r"slope\) not determined.*--set NEGATIVE_SLOPE"):
        read_facts(folder)
