"""Score-first TTT is legal by test: the stream flip audit finds no earlier score moved by
a later token for ttt, ttt-lora and ttt-phased, and finds them for a protocol that trains
before it scores and for a two-pass (score, train, rescore) control; every distribution
scored from is normalised over the vocabulary; nothing trains before the first score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from golf.audit.causality import audit_stream
from golf.data.shards import Dataset
from golf.engine.engine import EngineModel, prepare
from golf.protocols.scored import Scored
from golf.protocols.stream import StreamProtocol, module_of, sgd_chunks, trainable_copy
from golf.protocols.ttt import TTT
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams

BASE = EvalParams(seq_len=32, stride=8, precision="fp32", batch_windows=8)
PARAMS = {
    "ttt": BASE.model_copy(
        update={"ttt_chunk_tokens": 96, "ttt_lr": 0.05, "ttt_batch_seqs": 2, "ttt_epochs": 1}
    ),
    "ttt-lora": BASE.model_copy(
        update={"lora_rank": 2, "lora_chunk": 8, "lora_batch_docs": 2, "lora_lr": 0.05}
    ),
    "ttt-phased": BASE.model_copy(
        update={
            "lora_rank": 2,
            "lora_chunk": 8,
            "lora_batch_docs": 2,
            "lora_lr": 0.05,
            "phased_prefix_docs": 3,
            "phased_phases": 2,
            "global_chunk_tokens": 64,
            "global_batch_seqs": 1,
            "global_lr": 0.05,
        }
    ),
}


@pytest.fixture(scope="module")
def tokens(demo_data: Path) -> np.ndarray:
    """Five documents (31, 25, 33, 327 and 121 tokens): the stream after the first one."""
    return np.asarray(Dataset.open(demo_data).val_tokens(32))[463:1000]


class TrainThenScore(StreamProtocol):
    """The "pre-quant TTT on val" pattern: adapt on the whole stream, then score it."""

    name = "train-then-score"

    def default_stride(self, seq_len: int) -> int:
        return min(8, seq_len)

    def score(self, model, tokens, params, progress=None) -> list[Scored]:
        params = self.resolve(params)
        work = trainable_copy(model)
        train = list(module_of(work).parameters())
        sgd = torch.optim.SGD(train, lr=0.05)
        n = tokens.numel() - 1
        sgd_chunks(work, train, sgd, tokens, 0, n, seq_len=params.seq_len, batch_seqs=4,
                   epochs=1, clip=1.0, lr=0.05)  # fmt: skip
        plan = self.plan(n, params)
        return TTT().score_windows(work, tokens, plan, range(len(plan)), params)


class TwoPass(TTT):
    """Score-first TTT, then a second pass rescoring every window with the final weights."""

    name = "two-pass"

    def score(self, model, tokens, params, progress=None, **kw) -> list[Scored]:
        params = self.resolve(params)
        work = trainable_copy(model)
        first = TTT.score(self, work, tokens, params)  # trains a copy of `work`
        train = self.train_params(module_of(work), params)
        sgd = torch.optim.SGD(train, lr=params.ttt_lr)
        sgd_chunks(work, train, sgd, tokens, 0, tokens.numel() - 1, seq_len=params.seq_len,
                   batch_seqs=4, epochs=1, clip=1.0, lr=params.ttt_lr)  # fmt: skip
        plan = self.plan(tokens.numel() - 1, params)
        return self.score_windows(work, tokens, plan, range(len(first)), params)


@pytest.mark.parametrize("mode", ["canonical", "record"])
@pytest.mark.parametrize("name", ["ttt-lora", "ttt-phased"])
def test_warm_start_a_stays_score_first(model, tokens, name, mode) -> None:
    """Warm-start A carries what earlier batches' documents taught each slot, and those
    were scored before: no earlier score moves. In stream order it does (a short document
    early in the stream is scored after a long one trained the slot's A)."""
    params = PARAMS[name].model_copy(update={"lora_warm_start_a": True, "ttt_mode": mode})
    report = audit_stream(model, tokens, name, params, flips=3, seed=1)
    assert report["flips"] == 3 and report["pairs_tested"] > 100
    assert report["violations"] == 0 and report["verdict"] == "score-first"
    assert report["rerun_max_abs_diff"] == 0.0
    assert report["stream_prefix_violations"] > 0


@pytest.mark.parametrize("name", ["ttt", "ttt-lora", "ttt-phased"])
def test_score_first_protocols_pass(model, tokens, name) -> None:
    report = audit_stream(model, tokens, name, PARAMS[name], flips=3, seed=1)
    assert report["flips"] == 3 and report["pairs_tested"] > 100
    assert report["violations"] == 0 and report["verdict"] == "score-first"
    assert report["rerun_max_abs_diff"] == 0.0
    assert report["normalized"] and report["normalization_rows"] > 0
    assert report["normalization_max_abs_error"] <= 1e-5
    # in stream order too, except ttt-phased: it scores long documents first and trains
    # its base on them, so shorter documents earlier in the stream, scored later, move
    assert (report["stream_prefix_violations"] > 0) is (name == "ttt-phased")


@pytest.mark.parametrize("control", [TrainThenScore(), TwoPass()])
def test_training_before_scoring_fails(model, tokens, control) -> None:
    report = audit_stream(model, tokens, control, PARAMS["ttt"], flips=3, seed=1)
    assert report["violations"] > 0 and report["verdict"] == "NOT score-first"
    assert report["violation_rate"] > 0.5  # nearly every earlier score moves


def test_batch_protocols_are_audited_by_window(model, tokens) -> None:
    with pytest.raises(ConfigError, match="batch by batch"):
        audit_stream(model, tokens, "slot", BASE)


class Recorder(EngineModel):
    """Notes whether each forward ran with gradients (training) or without (scoring)."""

    def __init__(self, model: EngineModel, log: list[bool]):
        super().__init__(model.engine, model.model)
        self.log = log

    def forward_hidden(self, ids: Tensor, *args, **kwargs) -> Tensor:  # type: ignore[override]
        self.log.append(torch.is_grad_enabled() and not torch.is_inference_mode_enabled())
        return super().forward_hidden(ids, *args, **kwargs)


@pytest.mark.parametrize("name", ["ttt", "ttt-lora", "ttt-phased"])
def test_no_warm_up_reads_val_before_the_first_score(model, tokens, name) -> None:
    """The records' compile warm-up ran backward/step on val tokens before scoring
    (PR #1530's ruling); golf-eval's protocols have no warm-up: the first forward over
    the stream is a scoring one. (ttt-lora scores with gradients on: its first forward
    is the first chunk's, scored before its step.)"""
    from golf.spec.registry import get_protocol

    log: list[bool] = []
    params = PARAMS[name]
    probe = Recorder(prepare(model, params), log)
    steps: list[int] = []
    units = get_protocol(name).score(
        probe, torch.from_numpy(tokens.astype(np.int64)), params, lambda k, u: steps.append(k)
    )
    assert log and units and steps[0] == 0
    if name == "ttt":
        assert log[0] is False  # inference mode: scoring
        first_train = log.index(True)
        n_windows_chunk0 = sum(1 for u in units if u.targets[0] < params.ttt_chunk_tokens)
        assert first_train >= -(-n_windows_chunk0 // params.batch_windows)
