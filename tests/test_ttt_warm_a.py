"""Warm-start A (`lora_warm_start_a`, the records' TTT_WARM_START_A=1): the flag changes
scores, the fast path equals the literal reference, a resumed chain equals the
uninterrupted one (the carried A is in the checkpoint), the planner makes canonical
ttt-lora a chain, and the canonical slot draws are a stream of their own. On a gang:
tests/test_gang.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from golf.data.shards import Dataset
from golf.engine.engine import prepare
from golf.engine.evaluate import device_tokens, evaluate, summarize
from golf.protocols.chain import CheckpointError, chain_bytes, chain_state
from golf.protocols.ttt_lora import TTTLoRA, batch_generator, slot_bounds, warm_generator
from golf.protocols.ttt_phased import TTTPhased
from golf.spec.documents import find_documents
from golf.spec.errors import ConfigError
from golf.spec.jobplan import plan_job
from golf.spec.params import EvalParams

N_TOKENS = 1601
BASE = EvalParams(seq_len=64, stride=16, precision="fp32", batch_windows=8)
LORA = BASE.model_copy(
    update={
        "lora_rank": 4,
        "lora_chunk": 16,
        "lora_batch_docs": 3,
        "lora_lr": 0.01,
        "lora_warm_start_a": True,
    }
)
PHASED = LORA.model_copy(
    update={
        "phased_prefix_docs": 7,
        "phased_phases": 2,
        "global_chunk_tokens": 192,
        "global_batch_seqs": 2,
        "global_lr": 0.02,
    }
)
# As tests/test_ttt_protocols.py: the fast path and the reference compute the same fp32
# math in another order (~1e-6 relative per NLL); the carried A differs by the same
# rounding, which the next batch's ~1e-2 lr steps do not amplify over these 4-5 batches.
AGREE = 1e-6
CASES = [("ttt-lora", LORA), ("ttt-phased", PHASED)]


@pytest.fixture(scope="module")
def data(demo_data: Path):
    dataset = Dataset.open(demo_data)
    return np.asarray(dataset.val_tokens(64))[:N_TOKENS], dataset.byte_lut(1024)


def bpb(model, data, protocol, params) -> float:
    tokens, lut = data
    return summarize(evaluate(model, tokens, lut, protocol, params))["val_bpb"]


@pytest.mark.parametrize(("protocol", "params"), CASES)
@pytest.mark.parametrize("mode", ["canonical", "record"])
def test_warm_start_is_live_and_fast_equals_reference(model, data, protocol, params, mode):
    params = params.model_copy(update={"ttt_mode": mode})
    warm = bpb(model, data, protocol, params)
    ref = bpb(model, data, protocol, params.model_copy(update={"reference": True}))
    cold = bpb(model, data, protocol, params.model_copy(update={"lora_warm_start_a": False}))
    print(f"{protocol} {mode}: warm {warm:.8f} |Δ ref| {abs(warm - ref):.2g} cold {cold:.8f}")
    assert warm == pytest.approx(ref, abs=AGREE)
    assert abs(warm - cold) > 100 * AGREE  # the carried A changes what later batches score


def test_canonical_draws_follow_the_seed(model, data) -> None:
    """Canonical warm start: the same seed gives the same bits, another seed other A."""
    tokens = device_tokens(data[0], model)
    engine_model = prepare(model, LORA)
    a = TTTLoRA().score(engine_model, tokens, LORA)
    b = TTTLoRA().score(engine_model, tokens, LORA)
    assert all(np.array_equal(x.nll, y.nll) for x, y in zip(a, b, strict=True))
    other = TTTLoRA().score(engine_model, tokens, LORA.model_copy(update={"ttt_seed": 1}))
    assert not np.array_equal(a[0].nll, other[0].nll)


def test_warm_draws_are_their_own_stream() -> None:
    """The slot draws of phase p are apart from the per-batch draws of position p."""
    for p in range(3):
        warm = torch.rand(4, generator=warm_generator(LORA, p))
        per_batch = torch.rand(4, generator=batch_generator(LORA, p))
        assert not torch.equal(warm, per_batch)
    assert not torch.equal(
        torch.rand(4, generator=warm_generator(LORA, 0)),
        torch.rand(4, generator=warm_generator(LORA, 1)),
    )


@pytest.mark.parametrize(("protocol", "params"), CASES)
@pytest.mark.parametrize("mode", ["canonical", "record"])
def test_resumed_chain_equals_the_uninterrupted_one(model, data, protocol, params, mode):
    """Every checkpoint carries each slot's A; resuming from any of them (through the
    checkpoint's bytes) ends where the uninterrupted chain does, to the bit."""
    params = params.model_copy(update={"ttt_mode": mode})
    proto = TTTLoRA() if protocol == "ttt-lora" else TTTPhased()
    tokens = device_tokens(data[0], model)
    engine_model = prepare(model, params)
    saved = []
    whole = proto.score(engine_model, tokens, params, checkpoint=saved.append, every=1)
    n = proto.steps(len(tokens), data[0], params)
    assert n >= 4 and [s.step for s in saved] == list(range(1, n))
    keys = {k for k in saved[0].lora}
    assert "head" in keys and all(
        v.shape[0] == params.lora_batch_docs for v in saved[0].lora.values()
    )
    for state in (saved[0], saved[1], saved[-1]):
        data_bytes = chain_bytes(state)
        back = chain_state(data_bytes, len(data_bytes))
        assert back.lora.keys() == state.lora.keys()
        resumed = proto.score(engine_model, tokens, params, resume=back)
        assert [u.unit for u in resumed] == [u.unit for u in whole]
        assert all(np.array_equal(a.nll, b.nll) for a, b in zip(whole, resumed, strict=True))
    # without the carried A (a checkpoint of a cold chain) the resume is refused
    bare = saved[1]
    bare.lora = {}
    with pytest.raises(CheckpointError, match="warm-start A"):
        proto.score(engine_model, tokens, params, resume=bare)


def test_the_carried_a_is_what_the_next_batch_starts_from(model, data) -> None:
    """A checkpoint's A after batch 1 differs from after batch 0 in the rows batch 1 ran
    (trained), and a phase replaces every slot (ttt-phased, canonical)."""
    tokens = device_tokens(data[0], model)
    saved = []
    engine_model = prepare(model, PHASED)
    TTTPhased().score(engine_model, tokens, PHASED, checkpoint=saved.append, every=1)
    first, second = saved[0].lora["head"], saved[1].lora["head"]
    assert not torch.equal(first, second)
    docs = find_documents(data[0])
    sizes = [len(b.docs) for b in TTTPhased().batches(docs, PHASED)]
    assert sizes[:3] == [3, 3, 1]  # phase 1 after 3 documents, phase 2 after 7


def test_warm_start_a_is_planned_as_a_chain(model, data) -> None:
    """Warm start turns canonical ttt-lora from shards into one chain for the gang it is
    offered (tests/test_gang.py runs it on two ranks); a subset of batches is refused."""
    tokens = data[0]
    cold = LORA.model_copy(update={"lora_warm_start_a": False})
    plan = plan_job(tokens, ["ttt-lora"], cold, batches_per_shard=1, chain_workers=4)
    assert plan.protocols[0].chain_workers == 0 and len(plan.shards) > 1
    for name, params in CASES:
        plan = plan_job(tokens, [name], params, batches_per_shard=1, chain_workers=4)
        assert plan.protocols[0].chain_workers == 4 and len(plan.shards) == 1
        assert plan.shards[0].batch_hi == plan.protocols[0].batches
    with pytest.raises(ConfigError, match="one chain") as err:
        TTTLoRA().score(prepare(model, LORA), device_tokens(tokens, model), LORA, only=[0])
    assert "\n" not in str(err.value)
    record = LORA.model_copy(update={"ttt_mode": "record"})
    with pytest.raises(ConfigError, match="one process"):
        plan_job(tokens, ["ttt-lora"], record, batches_per_shard=1, chain_workers=4)


def test_slot_bounds_cover_the_slots_once() -> None:
    for slots, world in ((3, 2), (64, 8), (2, 3)):
        bounds = slot_bounds(slots, world)
        assert bounds[0][0] == 0 and bounds[-1][1] == slots
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert slot_bounds(2, 3) == [(0, 0), (0, 1), (1, 2)]


def test_cold_lora_through_the_chain_is_the_batch_loop(model, data) -> None:
    """Without warm start, ttt-lora asked for checkpoints runs as a chain: the same
    units, to the bit, as its independent batches; resumed, the same again."""
    cold = LORA.model_copy(update={"lora_warm_start_a": False})
    tokens = device_tokens(data[0], model)
    engine_model = prepare(model, cold)
    plain = TTTLoRA().score(engine_model, tokens, cold)
    saved = []
    chained = TTTLoRA().score(engine_model, tokens, cold, checkpoint=saved.append, every=2)
    resumed = TTTLoRA().score(engine_model, tokens, cold, resume=saved[0])
    assert saved and saved[0].lora == {}
    for run in (chained, resumed):
        assert [u.unit for u in run] == [u.unit for u in plain]
        assert all(np.array_equal(a.nll, b.nll) for a, b in zip(plain, run, strict=True))
