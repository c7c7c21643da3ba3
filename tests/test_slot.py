"""SLOT: the fast path equals the literal reference; its optimizer equals torch's AdamW."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from golf.data.bytes import ByteLUT
from golf.engine.evaluate import evaluate, summarize
from golf.models.gpt import GPT
from golf.protocols.adamw import FlatAdamW
from golf.protocols.base import Batch
from golf.protocols.slot_core import BETAS, EPS, WEIGHT_DECAY, lr_at
from golf.spec.params import EvalParams
from golf.spec.plan import make_plan
from golf.spec.registry import get_protocol

SEQ_LEN = 32


@pytest.fixture(scope="module")
def tokens(model: GPT) -> torch.Tensor:
    return torch.randint(
        0, model.config.vocab_size, (201,), generator=torch.Generator().manual_seed(1)
    )


def slot_params(**overrides) -> EvalParams:
    return EvalParams(seq_len=SEQ_LEN, batch_windows=5, **overrides)


def all_nll(model, tokens, name, **overrides) -> list[torch.Tensor]:
    """Per-position NLL of every batch of the protocol's plan."""
    protocol, run = get_protocol(name), slot_params(**overrides)
    plan = protocol.plan(tokens.numel() - 1, run)
    return [
        protocol.nll(model, Batch.from_plan(tokens, plan, plan.batch(k, 5)), run)
        for k in range(plan.n_batches(5))
    ]


def test_flat_adamw_is_torch_adamw_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.zeros(3, 1, 4), torch.zeros(3, 1, 7)
    a.grad, b.grad = torch.empty_like(a), torch.empty_like(b)
    reference = torch.optim.AdamW([a, b], betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    flat = torch.zeros(3, 11)
    ours = FlatAdamW(flat, BETAS, EPS, WEIGHT_DECAY)
    params = EvalParams()
    for step in range(params.slot_steps):
        grad = torch.randn(3, 11, generator=gen) * 10.0 ** (step % 5 - 4)
        a.grad.copy_(grad[:, None, :4])
        b.grad.copy_(grad[:, None, 4:])
        for group in reference.param_groups:
            group["lr"] = lr_at(step, params)
        reference.step()
        ours.step(grad, lr_at(step, params))
        assert torch.equal(flat, torch.cat([a, b], dim=-1)[:, 0])


def test_cosine_schedule_endpoints():
    params = EvalParams(slot_steps=4, slot_lr=0.5, slot_lr_min=0.1)
    assert lr_at(0, params) == 0.5
    assert lr_at(2, params) == pytest.approx(0.3)
    assert lr_at(3, params) > 0.1


AGREEMENT_CASES = [
    {},
    {"batch_invariant": True},
    {"plan": "legacy", "stride": 8},  # tail windows down to length 1, padded in a batch
    {"plan": "legacy", "stride": 8, "batch_invariant": True, "slot_lr": 0.05},
    {"stride": 24, "slot_steps": 7, "slot_lr": 0.1, "slot_lr_min": 0.0},
]


@pytest.mark.parametrize("name", ["slot", "slot-causal"])
@pytest.mark.parametrize("overrides", AGREEMENT_CASES)
def test_fast_path_matches_reference_per_position(model, tokens, name, overrides):
    fast = all_nll(model, tokens, name, **overrides)
    reference = all_nll(model, tokens, name, reference=True, **overrides)
    for got, want in zip(fast, reference, strict=True):
        assert got.shape == want.shape
        assert (got == 0).equal(want == 0)  # same scored positions
        torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


@pytest.mark.parametrize("name", ["slot", "slot-causal"])
@pytest.mark.parametrize("overrides", AGREEMENT_CASES)
def test_fast_path_matches_reference_per_window_and_in_val_bpb(model, tokens, name, overrides):
    vocab = model.config.vocab_size
    byte_lut = ByteLUT(np.arange(vocab) % 4, np.arange(vocab) % 3 == 0, np.arange(vocab) % 50 == 0)
    fast, reference = (
        evaluate(model, tokens, byte_lut, name, slot_params(reference=reference, **overrides))
        for reference in (False, True)
    )
    assert [replace(r, nll_sum=0.0) for r in fast] == [replace(r, nll_sum=0.0) for r in reference]
    np.testing.assert_allclose(
        [r.nll_sum for r in fast], [r.nll_sum for r in reference], rtol=0, atol=1e-4
    )
    assert summarize(fast)["val_bpb"] == pytest.approx(summarize(reference)["val_bpb"], abs=1e-5)


@pytest.mark.parametrize("name", ["slot", "slot-causal"])
def test_zero_steps_is_sliding(model, tokens, name):
    adapted = all_nll(model, tokens, name, slot_steps=0, stride=12)
    frozen = all_nll(model, tokens, "sliding", stride=12)
    for got, want in zip(adapted, frozen, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_slot_lowers_nll_on_scored_targets(model, tokens):
    adapted = all_nll(model, tokens, "slot", stride=12, slot_lr=0.05)
    frozen = all_nll(model, tokens, "sliding", stride=12)
    assert sum(n.sum() for n in adapted) < sum(n.sum() for n in frozen)


def test_causal_slot_scores_the_first_window_unadapted(model, tokens):
    causal = all_nll(model, tokens, "slot-causal", stride=12, slot_lr=0.1)[0]
    frozen = all_nll(model, tokens, "sliding", stride=12)[0]
    torch.testing.assert_close(causal[0], frozen[0], rtol=0, atol=1e-6)
    assert (causal[1:] - frozen[1:]).abs().max() > 1e-3


@pytest.mark.parametrize("reference", [False, True])
def test_causal_slot_without_any_context_is_sliding(model, tokens, reference):
    """A batch whose only window has no context: nothing to fit, no division by zero."""
    alone = all_nll(model, tokens, "slot-causal", stride=12, max_windows=1, reference=reference)
    frozen = all_nll(model, tokens, "sliding", stride=12, max_windows=1)
    torch.testing.assert_close(alone[0], frozen[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("name", ["slot", "slot-causal"])
def test_batch_invariant_window_ignores_its_batch_mates(model, tokens, name, reference):
    """Window by window alone, or all together (short legacy tails padded): same NLL."""
    params = EvalParams(
        seq_len=SEQ_LEN, stride=8, plan="legacy", batch_invariant=True, reference=reference
    )
    protocol = get_protocol(name)
    plan = make_plan(tokens.numel() - 1, SEQ_LEN, 8, "legacy")
    together = protocol.nll(model, Batch.from_plan(tokens, plan, range(len(plan))), params)
    for window in range(len(plan)):
        alone = protocol.nll(
            model, Batch.from_plan(tokens, plan, range(window, window + 1)), params
        )
        width = alone.shape[1]
        torch.testing.assert_close(alone[0], together[window, :width], rtol=0, atol=2e-5)
        assert (together[window, width:] == 0).all()
