"""Score-first TTT protocols: fast paths equal their literal references, canonical mode
does not depend on how batches are split, phases start exactly where they should, the
caller's model is untouched, and a chain resumed from a checkpoint ends where an
uninterrupted one does."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.data.shards import Dataset
from golf.engine.engine import prepare
from golf.engine.evaluate import device_tokens, evaluate, summarize
from golf.protocols.ttt import TTT
from golf.protocols.ttt_lora import TTTLoRA, doc_batches
from golf.protocols.ttt_phased import TTTPhased, canonical_batches, phase_boundaries
from golf.spec.documents import find_documents
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams

N_TOKENS = 1601
BASE = EvalParams(seq_len=64, stride=16, precision="fp32", batch_windows=8)
TTT_PARAMS = BASE.model_copy(
    update={"ttt_chunk_tokens": 256, "ttt_lr": 0.02, "ttt_batch_seqs": 2, "ttt_epochs": 2}
)
LORA_PARAMS = BASE.model_copy(
    update={"lora_rank": 4, "lora_chunk": 16, "lora_batch_docs": 3, "lora_lr": 0.01}
)
PHASED_PARAMS = LORA_PARAMS.model_copy(
    update={
        "phased_prefix_docs": 7,
        "phased_phases": 2,
        "global_chunk_tokens": 192,
        "global_batch_seqs": 2,
        "global_lr": 0.02,
    }
)
# fp32 forward of the same math in another order (batched rows, pruned last layer):
# per-target NLLs agree to ~1e-6 relative; summed over ~1600 targets of ~7 nats and
# divided by ~4,000 bytes, 1e-6 bits per byte bounds the difference with room.
AGREE = 1e-6


@pytest.fixture(scope="module")
def data(demo_data: Path):
    dataset = Dataset.open(demo_data)
    return np.asarray(dataset.val_tokens(64))[:N_TOKENS], dataset.byte_lut(1024)


def bpb(model, data, protocol, params) -> float:
    tokens, lut = data
    return summarize(evaluate(model, tokens, lut, protocol, params))["val_bpb"]


def test_the_slice_holds_documents(data) -> None:
    docs = find_documents(data[0])
    assert len(docs) >= 8  # enough for several batches and two phases
    assert docs.starts[0] == 0  # the demo stream opens with a BOS


@pytest.mark.parametrize(
    ("protocol", "params"),
    [("ttt", TTT_PARAMS), ("ttt-lora", LORA_PARAMS), ("ttt-phased", PHASED_PARAMS)],
)
def test_fast_path_equals_reference(model, data, protocol, params) -> None:
    fast = bpb(model, data, protocol, params)
    ref = bpb(model, data, protocol, params.model_copy(update={"reference": True}))
    assert fast == pytest.approx(ref, abs=AGREE)
    frozen = bpb(model, data, "sliding", BASE)
    assert abs(fast - frozen) > 1e-3  # the adaptation changes the score


@pytest.mark.parametrize(
    ("protocol", "params"),
    [("ttt", TTT_PARAMS), ("ttt-lora", LORA_PARAMS), ("ttt-phased", PHASED_PARAMS)],
)
def test_every_target_scored_once_and_model_untouched(model, data, protocol, params) -> None:
    before = copy.deepcopy(model.state_dict())
    tokens, lut = data
    records = evaluate(model, tokens, lut, protocol, params)
    assert sum(r.tokens for r in records) == len(tokens) - 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_lora_batches_shard_bit_identically(model, data) -> None:
    """Canonical A draws depend on the batch index only: any split of the batches scores
    each document to the same bits."""
    tokens = device_tokens(data[0], model)
    proto = TTTLoRA()
    engine_model = prepare(model, LORA_PARAMS)
    whole = {u.unit: u.nll for u in proto.score(engine_model, tokens, LORA_PARAMS)}
    n = proto.steps(len(tokens), data[0], LORA_PARAMS)
    assert n >= 4
    parts = {}
    for shard in (range(0, n, 2), range(1, n, 2)):
        parts |= {u.unit: u.nll for u in proto.score(engine_model, tokens, LORA_PARAMS, only=shard)}
    assert whole.keys() == parts.keys()
    assert all(np.array_equal(whole[j], parts[j]) for j in whole)


def test_evaluate_runs_lora_document_batches_as_shards(model, data) -> None:
    """What a worker runs: `evaluate(..., batches=...)` over document batches; the shards'
    records are the whole run's, bit for bit. Chains refuse it."""
    tokens, lut = data
    whole = evaluate(model, tokens, lut, "ttt-lora", LORA_PARAMS)
    n = TTTLoRA().steps(len(tokens), tokens, LORA_PARAMS)
    shards = [
        evaluate(model, tokens, lut, "ttt-lora", LORA_PARAMS, batches=r)
        for r in (range(n // 2, n), range(n // 2))
    ]
    assert sorted(shards[0] + shards[1], key=lambda r: r.window) == sorted(
        whole, key=lambda r: r.window
    )
    assert summarize(shards[0] + shards[1]) == summarize(whole)
    for name, params in (
        ("ttt-phased", PHASED_PARAMS),
        ("ttt-lora", LORA_PARAMS.model_copy(update={"ttt_mode": "record"})),
    ):
        with pytest.raises(ConfigError, match="runs whole"):
            evaluate(model, tokens, lut, name, params, batches=[0])


def test_record_mode_draws_another_stream(model, data) -> None:
    canonical = bpb(model, data, "ttt-lora", LORA_PARAMS)
    record = bpb(model, data, "ttt-lora", LORA_PARAMS.model_copy(update={"ttt_mode": "record"}))
    assert canonical != record
    with pytest.raises(ConfigError, match="canonical mode only"):
        params = LORA_PARAMS.model_copy(update={"ttt_mode": "record"})
        TTTLoRA().score(prepare(model, params), device_tokens(data[0], model), params, only=[0])


def test_batches_run_longest_first_and_shortest_first_inside(data) -> None:
    docs = find_documents(data[0])
    batches = doc_batches(docs, 3)
    longest = [int(docs.lengths[b.docs].max()) for b in batches]
    assert longest == sorted(longest, reverse=True)
    for b in batches:
        assert list(docs.lengths[b.docs]) == sorted(docs.lengths[b.docs])
    assert sorted(np.concatenate([b.docs for b in batches]).tolist()) == list(range(len(docs)))


def test_canonical_phases_stop_exactly_record_phases_overshoot(model, data, monkeypatch) -> None:
    docs = find_documents(data[0])
    bounds = phase_boundaries(len(docs), PHASED_PARAMS)
    assert bounds == [3, 7]
    cut = canonical_batches(doc_batches(docs, 3), bounds, 3)
    assert [len(b.docs) for b in cut][:4] == [3, 3, 1, 3]  # 3 | 3+1 = 7 | ...
    seen: dict[str, list[int]] = {"canonical": [], "record": []}
    mode = {"now": "canonical"}

    def spy(self, work, tokens, docs, prefix, params, group=None):
        seen[mode["now"]].append(len(prefix))

    monkeypatch.setattr(TTTPhased, "global_sgd", spy)
    tokens = device_tokens(data[0], model)
    for name in ("canonical", "record"):
        mode["now"] = name
        params = PHASED_PARAMS.model_copy(update={"ttt_mode": name})
        TTTPhased().score(prepare(model, params), tokens, params)
    assert seen["canonical"] == [3, 7]
    assert seen["record"] == [3, 7]  # trains on the first b_k, even after overshooting


def test_ttt_chain_resumes_from_a_checkpoint(model, data) -> None:
    tokens = device_tokens(data[0], model)
    proto = TTT()
    engine_model = prepare(model, TTT_PARAMS)
    saved = []
    whole = proto.score(engine_model, tokens, TTT_PARAMS, checkpoint=saved.append, every=2)
    assert [s.step for s in saved] == [2, 4, 6]  # 1,600 targets: 7 chunks of 256
    resumed = proto.score(engine_model, tokens, TTT_PARAMS, resume=saved[1])
    assert [u.unit for u in resumed] == [u.unit for u in whole]
    assert all(np.array_equal(a.nll, b.nll) for a, b in zip(whole, resumed, strict=True))


@pytest.mark.parametrize("mode", ["canonical", "record"])
def test_ttt_phased_chain_resumes_from_a_checkpoint(model, data, mode) -> None:
    """From any batch: the weights the phases left, and in record mode the one draw
    stream replayed up to there."""
    params = PHASED_PARAMS.model_copy(update={"ttt_mode": mode})
    tokens = device_tokens(data[0], model)
    proto = TTTPhased()
    engine_model = prepare(model, params)
    saved = []
    whole = proto.score(engine_model, tokens, params, checkpoint=saved.append, every=1)
    n = proto.steps(len(tokens), data[0], params)
    assert [s.step for s in saved] == list(range(1, n))
    for state in (saved[1], saved[-1]):  # between the two phases, after both
        resumed = proto.score(engine_model, tokens, params, resume=state)
        assert [u.unit for u in resumed] == [u.unit for u in whole]
        assert all(np.array_equal(a.nll, b.nll) for a, b in zip(whole, resumed, strict=True))


def test_freezing_the_first_blocks(model) -> None:
    proto = TTT()
    params = TTT_PARAMS.model_copy(update={"ttt_freeze_blocks": 1})
    names = {id(p): n for n, p in model.named_parameters()}
    controls = {names[id(p)] for p in proto.train_params(model, params)}
    assert "blocks.0.attn.c_q.weight" in controls  # records' banked matrices still train
    assert "blocks.0.attn_scale" not in controls and "blocks.1.attn_scale" in controls
    every = {
        names[id(p)]
        for p in proto.train_params(model, params.model_copy(update={"ttt_freeze_scope": "all"}))
    }
    assert not any(n.startswith("blocks.0.") for n in every)


def test_stream_protocols_refuse_batches(model, data) -> None:
    tokens, lut = data
    with pytest.raises(ConfigError, match="runs whole"):
        evaluate(model, tokens, lut, "ttt", TTT_PARAMS, batches=[0])
