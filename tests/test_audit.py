"""The causality flip test separates causal protocols from standard SLOT."""

import pytest
import torch
from torch import Tensor, nn

from golf.audit.causality import audit
from golf.models.gpt import GPT
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams


@pytest.fixture(scope="module")
def tokens(model: GPT) -> torch.Tensor:
    return torch.randint(
        0, model.config.vocab_size, (400,), generator=torch.Generator().manual_seed(2)
    )


PARAMS = EvalParams(seq_len=48, stride=12, batch_windows=4)


@pytest.mark.parametrize("name", ["plain", "sliding", "slot-causal"])
def test_causal_protocols_have_no_violations(model, tokens, name):
    params = PARAMS.model_copy(update={"stride": None}) if name == "plain" else PARAMS
    report = audit(model, tokens, name, params, windows=6, seed=3)
    assert report["protocol"] == name
    assert report["windows_tested"] == 6 and report["pairs_tested"] > 0
    assert report["violations"] == 0 and report["violation_rate"] == 0.0
    assert report["within_window_pairs"] > 0 and report["cross_window_pairs"] > 0
    assert report["within_window_rate"] == report["cross_window_rate"] == 0.0
    assert report["rerun_max_abs_diff"] == 0.0


@pytest.mark.parametrize("batch_invariant", [False, True])
def test_standard_slot_leaks_within_the_window_only(model, tokens, batch_invariant):
    """Every earlier target of the flipped window moves; batch mates never do, whether the
    loss is normalised per window or per batch (the batch's count is a constant: each
    window's delta still gets only its own window's gradient)."""
    params = PARAMS.model_copy(update={"batch_invariant": batch_invariant})
    report = audit(model, tokens, "slot", params, windows=6, seed=3)
    assert report["within_window_rate"] > 0.9
    assert report["cross_window_pairs"] > 0 and report["cross_window_violations"] == 0
    assert report["cross_window_rate"] == 0.0
    # The totals mix the two kinds; their rate is diluted by the batch mates.
    assert report["pairs_tested"] == report["within_window_pairs"] + report["cross_window_pairs"]
    assert report["violations"] == report["within_window_violations"] > 0
    assert 0 < report["violation_rate"] < report["within_window_rate"]


def test_audit_is_deterministic(model, tokens):
    assert audit(model, tokens, "slot", PARAMS, windows=3, seed=5) == audit(
        model, tokens, "slot", PARAMS, windows=3, seed=5
    )


def at_rows(hidden: Tensor, rows: Tensor | None) -> Tensor:
    """The Scorer contract: with `rows`, the hidden gathered at those positions."""
    if rows is None:
        return hidden
    return hidden.gather(1, rows[..., None].expand(-1, -1, hidden.size(-1)))


class Lookahead(nn.Module):
    """A broken model: every position also sees the mean hidden state of its whole window."""

    def __init__(self, inner: GPT):
        super().__init__()
        self.inner, self.config = inner, inner.config

    @property
    def head_weight(self) -> Tensor:
        return self.inner.head_weight

    def forward_hidden(self, ids: Tensor, rows: Tensor | None = None, attention=None) -> Tensor:
        return at_rows(self.leak(self.inner.forward_hidden(ids, attention=attention)), rows)

    def leak(self, hidden: Tensor) -> Tensor:
        return hidden + hidden.mean(1, keepdim=True)

    def logits(self, hidden: Tensor) -> Tensor:
        return self.inner.logits(hidden)


def test_a_model_that_sees_the_future_is_caught_under_sliding(model, tokens):
    report = audit(Lookahead(model), tokens, "sliding", PARAMS, windows=4, seed=3)
    assert report["violations"] > 0
    assert report["within_window_violations"] > 0 and report["cross_window_violations"] == 0


class BatchMixing(Lookahead):
    """A broken model: every row also sees the mean hidden state of the batch's rows."""

    def leak(self, hidden: Tensor) -> Tensor:
        return hidden + hidden.mean(0, keepdim=True)


def test_coupling_across_windows_is_caught_as_cross_window(model, tokens):
    report = audit(BatchMixing(model), tokens, "sliding", PARAMS, windows=4, seed=3)
    assert report["cross_window_violations"] > 0 and report["cross_window_rate"] > 0


def test_audit_needs_a_window(model, tokens):
    with pytest.raises(ConfigError):
        audit(model, tokens, "sliding", PARAMS, windows=0)
