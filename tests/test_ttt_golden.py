"""`ttt` equals the record's own `eval_val_sliding_ttt` (2026-03-23_LeakyReLU_LegalTTT_
ParallelMuon) on the tiny model its own code trained, quantized and scored.

The fixture was written by scripts/record_harness/run.py (record.json: record folder,
official commit, the environment it ran with, the lines its code printed); the record's
code is not in this repository. Tolerance: the printed `_exact` numbers carry 8 decimals
(±5e-9), and our fp32 CPU forward reorders a few sums against the record's banked layout
(per-tensor gradient norms for the clip); 1e-5 bits per byte is the issue's bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golf.data.shards import Dataset
from golf.engine.evaluate import evaluate, summarize
from golf.formats.artifact import load_model
from golf.formats.pg import import_reference
from golf.spec.params import EvalParams

FIXTURES = Path(__file__).parent / "fixtures" / "records"
FOLDER = FIXTURES / "2026-03-23_LeakyReLU_LegalTTT_ParallelMuon"
TOLERANCE = 1e-5

# What the tensors cannot tell: 2026-03-23's Hyperparameters defaults (train_gpt.py) and
# its hard-coded Rotary(train_seq_len=1024); the tiny run's env overrides come on top.
RECORD_DEFAULTS = {
    "logit_softcap": 30.0,
    "rope_base": 10000.0,
    "rope_dims": 16,
    "rope_train_seq_len": 1024,
    "qk_gain_init": 1.5,
    "ln_scale": 1,
    "xsa_last_n": 4,
    "ve_layers": "9,10",
}


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads((FOLDER / "record.json").read_text())


@pytest.fixture(scope="module")
def inputs(record: dict, tmp_path_factory: pytest.TempPathFactory):
    env = {k.lower(): v for k, v in record["env"].items()}
    hparams = RECORD_DEFAULTS | {k: env[k] for k in RECORD_DEFAULTS if k in env}
    data = FIXTURES / "_data" / f"sp{record['data']['vocab_size']}"
    tokenizer = data / record["data"]["tokenizer"]
    out = tmp_path_factory.mktemp("golden") / "model.golf"
    artifact = import_reference(FOLDER / "final_model.int6.ptz", hparams, tokenizer, out)
    dataset = Dataset.open(data, tokenizer)
    model = load_model(artifact).eval()
    seq_len = int(env["eval_seq_len"])
    tokens = dataset.val_tokens(seq_len)
    assert len(tokens) == record["data"]["val_tokens"]
    return model, tokens, dataset.byte_lut(artifact.config.vocab_size), env


def _params(env: dict) -> EvalParams:
    """The record's eval settings: its window rule is golf's legacy plan (see ttt.py)."""
    return EvalParams(
        seq_len=int(env["eval_seq_len"]),
        stride=int(env["eval_stride"]),
        plan="legacy",
        precision="fp32",
        ttt_chunk_tokens=int(env["ttt_chunk_tokens"]),
        ttt_epochs=int(env["ttt_epochs"]),
        ttt_lr=float(env["ttt_lr"]),
        ttt_freeze_blocks=int(env["ttt_freeze_blocks"]),
        ttt_batch_seqs=int(env["ttt_batch_seqs"]),
    )


def test_sliding_equals_the_record(record, inputs) -> None:
    model, tokens, lut, env = inputs
    got = summarize(evaluate(model, tokens, lut, "sliding", _params(env)))
    want = record["printed"]["final_int6_sliding_window_exact"]
    assert got["val_bpb"] == pytest.approx(want["val_bpb"], abs=TOLERANCE)
    assert got["val_loss"] == pytest.approx(want["val_loss"], abs=TOLERANCE)


def test_ttt_equals_the_record(record, inputs) -> None:
    model, tokens, lut, env = inputs
    got = summarize(evaluate(model, tokens, lut, "ttt", _params(env)))
    want = record["printed"]["legal_ttt_exact"]
    assert got["val_bpb"] == pytest.approx(want["val_bpb"], abs=TOLERANCE)
    assert got["val_loss"] == pytest.approx(want["val_loss"], abs=TOLERANCE)
    # and TTT did something: the adapted score is clearly not the frozen one
    sliding = record["printed"]["final_int6_sliding_window_exact"]["val_bpb"]
    assert sliding - got["val_bpb"] > 100 * TOLERANCE
