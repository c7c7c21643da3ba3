"""Protocol registry, parameters, batches, and the evaluation engine over them."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golf.data.bytes import ByteLUT
from golf.engine.evaluate import WindowRecord, evaluate, summarize
from golf.models.gpt import GPT
from golf.protocols.base import Batch
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import make_plan, shard_plan
from golf.spec.registry import get_protocol, protocol_names

SEQ_LEN = 32


def params_for(name: str, **overrides) -> EvalParams:
    """Small-window parameters; plain keeps its own stride (= seq_len)."""
    stride = None if name == "plain" else 12
    return EvalParams(seq_len=SEQ_LEN, stride=stride, batch_windows=3, **overrides)


@pytest.fixture(scope="module")
def tokens(model: GPT) -> torch.Tensor:
    return torch.randint(
        0, model.config.vocab_size, (230,), generator=torch.Generator().manual_seed(1)
    )


@pytest.fixture(scope="module")
def byte_lut(model: GPT) -> ByteLUT:
    """Random tables: 0-4 base bytes, some leading spaces, a few 0-byte boundaries."""
    rng = np.random.default_rng(0)
    vocab = model.config.vocab_size
    boundary = rng.random(vocab) < 0.05
    base_bytes = np.where(boundary, 0, rng.integers(0, 5, vocab))
    return ByteLUT(base_bytes, ~boundary & (rng.random(vocab) < 0.4), boundary)


def test_registry_names_every_protocol():
    assert protocol_names() == (
        "plain",
        "sliding",
        "slot",
        "slot-causal",
        "ttt",
        "ttt-lora",
        "ttt-phased",
    )
    assert all(get_protocol(name).name == name for name in protocol_names())


def test_listing_protocols_imports_no_torch():
    """The client CLI offers protocol choices in an install without torch."""
    code = (
        "import sys; from golf.spec.registry import protocol_names; from golf.spec.params import "
        "EvalParams; protocol_names(); EvalParams(); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_protocol_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="slot-causal"):
        get_protocol("slot-acausal")


@pytest.mark.parametrize(
    "bad",
    [
        {"stride": 0},
        {"stride": 4096},
        {"seq_len": "long"},
        {"plan": "sideways"},
        {"slot_lr": 0},
        {"max_windows": 0},
        {"batch_size": 8},
        {"slot_lr": float("inf")},
        {"slot_lr_min": 0.5},
        {"seq_len": 10**9},
        {"batch_windows": 10**9},
    ],
)
def test_invalid_params_are_one_line_config_errors(bad):
    with pytest.raises(ConfigError) as err:
        EvalParams.parse(bad)
    assert "\n" not in str(err.value) and next(iter(bad)) in str(err.value)


@pytest.mark.parametrize(
    ("name", "stride"), [("plain", 2048), ("sliding", 64), ("slot", 96), ("slot-causal", 96)]
)
def test_default_strides(name, stride):
    assert get_protocol(name).plan(100_000, EvalParams()).stride == stride


@pytest.mark.parametrize("name", protocol_names())
def test_resolve_is_the_stride_the_plan_uses_and_is_idempotent(name):
    protocol = get_protocol(name)
    for params in (EvalParams(seq_len=128), EvalParams(seq_len=128, stride=64)):
        resolved = protocol.resolve(params)
        assert resolved.stride is not None
        assert protocol.resolve(resolved) == resolved
        assert protocol.plan(1000, params).stride == resolved.stride


def test_plain_always_scores_whole_chunks_whatever_the_stride():
    """One rule for CLI, service and reports: plain ignores the run's stride, and says so."""
    plain = get_protocol("plain")
    resolved = plain.resolve(EvalParams(seq_len=128, stride=64))
    assert resolved.stride == 128
    assert plain.plan(1000, EvalParams(seq_len=128, stride=64)).stride == 128


def test_batch_pads_short_windows_and_masks_them_out():
    tokens = torch.arange(100, 141)  # N = 40 targets
    plan = make_plan(40, 16, 8, "legacy")
    batch = Batch.from_plan(tokens, plan, range(2, 5))  # lengths 16, 16, 8
    assert batch.windows == range(2, 5)
    lengths = batch.lengths.tolist()
    assert lengths == plan.lengths[2:5].tolist() and batch.inputs.shape == (3, max(lengths))
    for row, (start, length) in enumerate(zip(plan.starts[2:5], lengths, strict=True)):
        assert batch.inputs[row, :length].tolist() == list(range(100 + start, 100 + start + length))
        assert (batch.targets[row, :length] == batch.inputs[row, :length] + 1).all()
        assert (batch.inputs[row, length:] == 0).all() and (batch.targets[row, length:] == 0).all()
        scored = batch.scored[row].nonzero().flatten().tolist()
        assert scored == list(range(plan.score_from[2 + row], length))
        assert batch.context[row].nonzero().flatten().tolist() == list(
            range(plan.score_from[2 + row])
        )


def run(model, tokens, byte_lut, name, params=None, batches=None) -> list[WindowRecord]:
    return evaluate(model, tokens, byte_lut, name, params or params_for(name), batches=batches)


BATCHED = sorted(n for n in protocol_names() if not get_protocol(n).sequential)
"""Protocols whose batches stand alone; the TTT chains: tests/test_ttt_protocols.py."""


@pytest.mark.parametrize("name", BATCHED)
def test_shards_sum_to_the_same_bits(model, tokens, byte_lut, name):
    params = params_for(name)
    whole = run(model, tokens, byte_lut, name, params)
    n_batches = get_protocol(name).plan(tokens.numel() - 1, params).n_batches(3)
    shards = shard_plan(n_batches, 3)
    assert len(shards) == 3
    pieces = [run(model, tokens, byte_lut, name, params, shard) for shard in reversed(shards)]
    split = [record for piece in pieces for record in piece]
    assert summarize(split) == summarize(whole)
    assert sorted(split, key=lambda r: r.window) == whole


@pytest.mark.parametrize("name", BATCHED)
def test_canonical_plan_scores_every_target_once(model, tokens, byte_lut, name):
    summary = summarize(run(model, tokens, byte_lut, name))
    assert summary["tokens"] == tokens.numel() - 1
    assert 0 < summary["val_bpb"] < 20


def test_legacy_plan_counts_the_tail_again(model, tokens, byte_lut):
    params = params_for("sliding", plan="legacy")
    assert summarize(run(model, tokens, byte_lut, "sliding", params))["tokens"] > tokens.numel() - 1


def test_sliding_with_stride_seq_len_is_plain(model, tokens, byte_lut):
    params = EvalParams(seq_len=SEQ_LEN, stride=SEQ_LEN, batch_windows=3)
    assert run(model, tokens, byte_lut, "sliding", params) == run(
        model, tokens, byte_lut, "plain", params
    )


def test_sliding_matches_a_naive_window_loop(model, tokens, byte_lut):
    plan = get_protocol("sliding").plan(tokens.numel() - 1, params_for("sliding"))
    nll, n_bytes = [], 0
    with torch.no_grad():
        for start, lo, hi in zip(plan.starts, plan.score_from, plan.lengths, strict=True):
            window = tokens[start : start + hi + 1]
            logits = model.logits(model.forward_hidden(window[None, :-1]))[0]
            losses = F.cross_entropy(logits, window[1:], reduction="none")
            nll.extend(losses[lo:hi].double().tolist())
            n_bytes += int(byte_lut.count(window[None, lo:hi], window[None, lo + 1 : hi + 1]).sum())
    naive_bpb = math.fsum(nll) / math.log(2) / n_bytes
    summary = summarize(run(model, tokens, byte_lut, "sliding"))
    assert summary["tokens"] == len(nll) and summary["bytes"] == n_bytes
    assert summary["val_bpb"] == pytest.approx(naive_bpb, rel=1e-6)


def test_max_windows_and_progress(model, tokens, byte_lut):
    params = params_for("slot", max_windows=5)
    seen: list[tuple[int, list[WindowRecord]]] = []
    records = evaluate(
        model, tokens, byte_lut, "slot", params, progress=lambda k, rs: seen.append((k, rs))
    )
    assert [r.window for r in records] == list(range(5))
    assert [k for k, _ in seen] == [0, 1]
    assert [r for _, rs in seen for r in rs] == records


def test_evaluate_accepts_numpy_tokens(model, tokens, byte_lut):
    as_numpy = tokens.numpy().astype(np.uint16)
    batches = range(1)
    assert run(model, as_numpy, byte_lut, "sliding", batches=batches) == run(
        model, tokens, byte_lut, "sliding", batches=batches
    )


def test_batches_outside_the_plan_and_empty_summaries_are_config_errors(model, tokens, byte_lut):
    with pytest.raises(ConfigError):
        run(model, tokens, byte_lut, "sliding", batches=[10_000])
    with pytest.raises(ConfigError):
        summarize([])


NEW_PROTOCOL = '''
"""A protocol written as a third party would: one module, nothing else edited."""

from golf.protocols.sliding import Sliding


class Halved(Sliding):
    name = "halved"

    def default_stride(self, seq_len):
        return seq_len // 2
'''


def test_a_new_protocol_is_one_module_and_one_registry_line(
    model, tokens, byte_lut, tmp_path, monkeypatch
):
    from golf.spec import registry as protocols
    from golf.spec.jobplan import plan_job

    (tmp_path / "halved_protocol.py").write_text(NEW_PROTOCOL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(protocols.REGISTRY, "halved", "halved_protocol:Halved")
    assert "halved" in protocol_names()
    params = EvalParams(seq_len=24, batch_windows=4, max_windows=8)
    records = evaluate(model, tokens, byte_lut, "halved", params)
    sliding = evaluate(model, tokens, byte_lut, "sliding", params.model_copy(update={"stride": 12}))
    assert records == sliding
    job = plan_job(tokens.numel(), ["halved"], params, batches_per_shard=1)
    assert job.protocol("halved").params.stride == 12 and len(job.shards) == 2
