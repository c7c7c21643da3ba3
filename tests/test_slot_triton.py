"""The fused Triton SLOT step equals fast_slot, within float32 noise, and is deterministic.

On a CPU-only machine the kernels run under Triton's interpreter (slow: shapes are tiny).
"""

import copy
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu":
    # Without a GPU the kernels can only run interpreted. `@triton.jit` reads
    # TRITON_INTERPRET when a kernel is defined, and triton defines its own (tl.max, ...)
    # at import, so this is set at collection, before triton is first imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from golf.data.bytes import ByteLUT  # noqa: E402
from golf.engine.evaluate import evaluate, summarize  # noqa: E402
from golf.protocols import slot_triton  # noqa: E402
from golf.protocols.adamw import FlatAdamW  # noqa: E402
from golf.protocols.slot_core import BETAS, EPS, WEIGHT_DECAY, fast_slot, lr_at  # noqa: E402
from golf.spec.params import EvalParams  # noqa: E402

# Triton imported earlier in this process without the interpreter: it cannot be switched
# on any more, so the tests run in a fresh process instead (test_in_a_fresh_process).
LATE = DEVICE == "cpu" and not slot_triton.interpreted()
in_process = pytest.mark.skipif(LATE, reason="triton was imported without the interpreter")


SOFTCAP = 30.0
U = 2.0**-24  # float32 unit roundoff: half an ulp, round to nearest
LENGTHS = (24, 17, 9)  # ragged windows, padded to T = 24
CONTEXT = (0, 8, 4)  # the first window has no context
# (vocab, block_v, rows_per_program): vocabularies that blocks do not divide; one or
# several row chunks per window.
VOCABS = [(97, 64, 32), (300, 128, 5)]


def window_batch(vocab: int, causal: bool, seed: int = 0):
    """hidden, weight, targets, adapt, scored of 3 ragged windows, d = 16."""
    gen = torch.Generator().manual_seed(seed)
    n_windows, width, dim = len(LENGTHS), max(LENGTHS), 16
    hidden = torch.randn(n_windows, width, dim, generator=gen)
    weight = torch.randn(vocab, dim, generator=gen) * 0.3
    targets = torch.randint(0, vocab, (n_windows, width), generator=gen)
    pos = torch.arange(width)
    context = pos < torch.tensor(CONTEXT)[:, None]
    scored = (pos < torch.tensor(LENGTHS)[:, None]) & ~context
    adapt = context if causal else scored
    tensors = hidden, weight, targets, adapt, scored
    return tuple(t.to(DEVICE) for t in tensors)


def gamma(n: int) -> float:
    """Higham's gamma_n: the relative error bound of an n-term float32 sum or dot product."""
    return n * U / (1 - n * U)


def adam_reach(params: EvalParams) -> float:
    """A bound on |delta| and |logit_bias| after the fit: sum over steps of lr_k times the
    largest |m_hat / sqrt(v_hat)| AdamW can take at step k (Cauchy-Schwarz on the moment
    sums), plus nothing for weight decay, which only shrinks them."""
    beta1, beta2 = BETAS
    reach = 0.0
    for k in range(1, params.slot_steps + 1):
        a = [(1 - beta1) * beta1 ** (k - j) for j in range(1, k + 1)]
        b = [(1 - beta2) * beta2 ** (k - j) for j in range(1, k + 1)]
        ratio = math.sqrt(sum(x * x / y for x, y in zip(a, b, strict=True)))
        ratio *= math.sqrt(1 - beta2**k) / (1 - beta1**k)
        reach += lr_at(k - 1, params) * ratio
    return reach


def slot_nll_bound(h_dot_w: torch.Tensor, weight: torch.Tensor, params: EvalParams) -> float:
    """Forward rounding bound of one float32 SLOT scoring of a position, in nats, at a fixed
    delta and bias: `h_dot_w` [..., V] holds sum_i |h_i| |w_vi| per position and row.

    logit z = c tanh((h + delta) . w + b) / c): the dot product and two adds (gamma_{d+3}
    of P = sum |h + delta| |w| + |b|), the division, tanh to 2 ulps of 1 and the product
    (5u c); NLL = log sum exp(z - m) + m - z_t: twice the logit error, the subtraction
    (2u c, through exp into a relative error), exp (4u), the V-term sum (gamma_V), log and
    the two adds (2u |log V| + 2u (c + log V + nll)). The two float32 paths may also fit a
    slightly different delta; with the gradients here (far above AdamW's eps) that moves
    the update by a few u of lr, inside the margin below."""
    c, (vocab, dim) = SOFTCAP, weight.shape
    reach = adam_reach(params)
    p_max = (h_dot_w + reach * weight.abs().sum(1)).max().item() + reach
    logit = gamma(dim + 3) * p_max + 5 * U * c
    nll_max = 2 * c + math.log(vocab)
    rest = 2 * U * c + 4 * U + gamma(vocab) + 2 * U * math.log(vocab)
    return 2 * logit + rest + 2 * U * (c + math.log(vocab) + nll_max)


def bpb_like(nll: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor) -> float:
    """Exactly summed NLL over the bytes of the scored targets (1–4 bytes per token)."""
    n_bytes = int(((targets % 4 + 1) * scored).sum())
    return math.fsum(nll[scored].double().tolist()) / (math.log(2) * n_bytes)


@in_process
@pytest.mark.parametrize("batch_invariant", [True, False])
@pytest.mark.parametrize("causal", [False, True], ids=["slot", "slot-causal"])
@pytest.mark.parametrize(("vocab", "block_v", "rows"), VOCABS)
def test_matches_fast_slot(vocab, block_v, rows, causal, batch_invariant):
    hidden, weight, targets, adapt, scored = window_batch(vocab, causal)
    params = EvalParams(slot_steps=4, slot_lr=0.05, batch_invariant=batch_invariant)
    want = fast_slot(hidden, weight, SOFTCAP, targets, adapt, scored, params)
    got = slot_triton.triton_slot(
        hidden,
        weight,
        SOFTCAP,
        targets,
        adapt,
        scored,
        params,
        block_v=block_v,
        rows_per_program=rows,
    )
    assert (got == 0).equal(want == 0)
    # Two float32 evaluations, each within the rounding bound of the exact value.
    bound = 2 * slot_nll_bound(hidden.abs() @ weight.abs().T, weight, params)
    torch.testing.assert_close(got, want, rtol=0, atol=bound)
    n_bytes = int(((targets % 4 + 1) * scored).sum())
    bpb_bound = bound * int(scored.sum()) / (math.log(2) * n_bytes)
    assert abs(bpb_like(got, targets, scored) - bpb_like(want, targets, scored)) <= bpb_bound
    # The fit did move the NLL: the comparison is not between two unadapted scorings.
    unadapted = fast_slot(
        hidden, weight, SOFTCAP, targets, adapt, scored, params.model_copy(update={"slot_steps": 0})
    )
    assert (got - unadapted).abs().max() > 1e-3


@in_process
def test_runs_are_bit_identical():
    hidden, weight, targets, adapt, scored = window_batch(97, causal=False, seed=1)
    params = EvalParams(slot_steps=4)
    runs = [
        slot_triton.triton_slot(
            hidden, weight, SOFTCAP, targets, adapt, scored, params, rows_per_program=4
        )
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


@in_process
def test_nothing_to_fit_is_the_unadapted_scoring():
    """slot-causal batch of first windows only: no adapted row, θ stays exactly 0."""
    hidden, weight, targets, _, scored = window_batch(97, causal=True)
    adapt = torch.zeros_like(scored)
    params = EvalParams(slot_steps=3)
    got = slot_triton.triton_slot(hidden, weight, SOFTCAP, targets, adapt, scored, params)
    assert torch.equal(got, fast_slot(hidden, weight, SOFTCAP, targets, adapt, scored, params))


def adamw_f64(previous, exp_avg, exp_avg_sq, lr, steps):
    """FlatAdamW's parameter update in float64 from the (bit-equal) float32 moments: the
    exact value both float32 evaluations round towards."""
    beta1, beta2 = BETAS
    theta = previous.double() * (1 - lr * WEIGHT_DECAY)
    denom = exp_avg_sq.double().sqrt() / (1 - beta2**steps) ** 0.5 + EPS
    update = (lr / (1 - beta1**steps)) * exp_avg.double() / denom
    return theta - update, update.abs()


# Rounding error of one float32 evaluation of `theta*decay - s*m/(sqrt(v)/b + eps)`, in
# units of u = 2^-24 (half an ulp, round to nearest), counted operation by operation:
# - the update: the scalars s and b rounded to float32 (1 + 1), sqrt (2: torch's CPU sqrt
#   is not always correctly rounded, so a whole ulp), / b (1), + eps (1: both terms are
#   positive, so the relative error does not grow), the product and the quotient (1 + 1):
#   8 u of |update|, 9 with the second-order terms of those eight;
# - theta*decay: decay rounded (1) and the product (1): 2 u of |previous|;
# - the final sum: 1 u of |result|.
UPDATE_U, PREVIOUS_U, RESULT_U = 9, 2, 1


@in_process
def test_adamw_kernel_is_flat_adamw():
    """Each step from FlatAdamW's state: moments bit for bit (the same FMAs as torch), and
    the parameter of both the kernel and FlatAdamW within the rounding bound above of a
    float64 evaluation of the same formula (the two may round differently: the kernel
    multiplies before dividing, torch's addcdiv divides first)."""
    gen = torch.Generator().manual_seed(0)
    shape = (3, 1100)  # not a multiple of the kernel's block
    flat = torch.zeros(shape)
    reference = FlatAdamW(flat, BETAS, EPS, WEIGHT_DECAY)
    params = EvalParams(slot_steps=6)
    for step in range(params.slot_steps):
        grad = torch.randn(shape, generator=gen) * 10.0 ** torch.empty(shape).uniform_(
            -9, 0, generator=gen
        )
        previous = flat.clone()
        state = [t.to(DEVICE, copy=True) for t in (flat, reference.exp_avg, reference.exp_avg_sq)]
        lr = lr_at(step, params)
        reference.step(grad, lr)
        slot_triton.adamw_step(state[0], grad.to(DEVICE), *state[1:], lr, step + 1)
        theta, exp_avg, exp_avg_sq = (t.cpu() for t in state)
        assert torch.equal(exp_avg, reference.exp_avg)
        assert torch.equal(exp_avg_sq, reference.exp_avg_sq)
        exact, update = adamw_f64(previous, exp_avg, exp_avg_sq, lr, step + 1)
        bound = U * (
            UPDATE_U * update + PREVIOUS_U * previous.double().abs() + RESULT_U * exact.abs()
        )
        for name, result in (("kernel", theta), ("FlatAdamW", flat)):
            error = (result.double() - exact).abs()
            assert (error <= bound).all(), (name, step, (error / bound).max().item())


@in_process
@pytest.mark.parametrize("name", ["slot", "slot-causal"])
def test_protocol_path_selects_and_matches_torch(model, name, monkeypatch):
    """evaluate() with slot_kernel='triton' against 'torch': the real window plan and model."""
    original, calls = slot_triton.triton_slot, []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(slot_triton, "triton_slot", counted)
    if DEVICE == "cuda":
        model = copy.deepcopy(model).cuda()
    vocab = model.config.vocab_size
    tokens = torch.randint(0, vocab, (49,), generator=torch.Generator().manual_seed(2))
    byte_lut = ByteLUT(np.arange(vocab) % 4, np.arange(vocab) % 3 == 0, np.arange(vocab) % 50 == 0)
    params = EvalParams(
        seq_len=16, stride=8, batch_windows=2, max_windows=4, slot_steps=2, slot_lr=0.05
    )
    records = {
        kernel: evaluate(
            model, tokens, byte_lut, name, params.model_copy(update={"slot_kernel": kernel})
        )
        for kernel in ("torch", "triton")
    }
    assert calls  # the engine did pick the Triton step
    # The hidden is RMS-normed (|h|_2 = sqrt(d)): sum |h_i||w_vi| <= sqrt(d) |w_v|_2.
    weight = model.head_weight.detach().cpu()
    h_dot_w = math.sqrt(weight.size(1)) * weight.norm(dim=1)
    bound = 2 * slot_nll_bound(h_dot_w, weight, params)
    total = summarize(records["torch"])
    torch_bpb = total["val_bpb"]
    bpb_bound = bound * total["tokens"] / (math.log(2) * total["bytes"])
    assert abs(summarize(records["triton"])["val_bpb"] - torch_bpb) <= bpb_bound
    for ours, theirs in zip(records["triton"], records["torch"], strict=True):
        assert replace(ours, nll_sum=0.0) == replace(theirs, nll_sum=0.0)
        assert abs(ours.nll_sum - theirs.nll_sum) <= bound * ours.tokens


@pytest.mark.skipif(not LATE, reason="the tests above ran in this process")
def test_in_a_fresh_process():
    if os.environ.get("TRITON_INTERPRET", "1") != "1":
        pytest.skip("TRITON_INTERPRET is set off and there is no GPU")
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__]
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout
