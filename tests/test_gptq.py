"""GPTQ: calibration data, Hessians, the column algorithm against a literal slow version,
and the bound that matters: no quantized matrix has more output error than rounding."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from golf.data.shards import Dataset
from golf.formats.artifact import load_model, read_artifact, write_artifact
from golf.formats.quant import QMAX, QTensor, Scheme, quantize, quantize_state_dict, scheme_for
from golf.models.gpt import GPT, bigram_hash, rms_norm
from golf.spec.config import preset
from golf.spec.errors import ConfigError
from trainer.gptq import (
    BOS_ID,
    calibration_batches,
    collect_hessians,
    gptq_quantize,
    keep_better_rows,
    output_error,
    quantize_model,
    quantized_linears,
)

ALL = 0  # passthrough_max_numel that quantizes every non-control matrix of the tiny model
SEQ_LEN = 64


@pytest.fixture(scope="module")
def dataset(demo_data: Path) -> Dataset:
    return Dataset.open(demo_data)


@pytest.fixture(scope="module")
def batches(dataset: Dataset, model: GPT) -> list[Tensor]:
    return calibration_batches("train", dataset, model, 16, SEQ_LEN, seed=0)


@pytest.fixture(scope="module")
def variant() -> GPT:
    """Untied head (an int8 linear) and depth recurrence (blocks 1, 2 run twice), jittered."""
    torch.manual_seed(1)
    cfg = preset("tiny").replace(tie_embeddings=False, recur_layers=(1, 2))
    gpt = GPT(cfg).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return gpt.requires_grad_(False)


def linear_inputs(model: GPT, batches: list[Tensor]) -> dict[str, list[Tensor]]:
    """Every input each quantized linear multiplies, one [rows, in] tensor per call,
    captured by hooks of the test's own (and by hand for an untied head)."""
    seen: dict[str, list[Tensor]] = {}
    linears = quantized_linears(model, ALL)
    handles = [
        m.register_forward_hook(
            lambda mod, args, out, name=name: seen.setdefault(name, []).append(
                args[0].reshape(-1, args[0].size(-1)).clone()
            )
        )
        for name, m in linears.items()
    ]
    with torch.no_grad():
        for ids in batches:
            hidden = model.forward_hidden(ids)
            if "lm_head.weight" in linears:
                seen.setdefault("lm_head.weight", []).append(hidden.reshape(-1, hidden.size(-1)))
    for handle in handles:
        handle.remove()
    return seen


def same(a: QTensor, b: QTensor) -> bool:
    scales = a.scale is None and b.scale is None or torch.equal(a.scale, b.scale)
    return a.scheme is b.scheme and torch.equal(a.values, b.values) and scales


def rtn(model: GPT, name: str, weight: Tensor | None = None) -> QTensor:
    """Round-to-nearest of the model's tensor `name` (or of `weight` in its place)."""
    weight = model.state_dict()[name] if weight is None else weight
    role = model.parameter_roles()[name]
    return quantize(weight, scheme_for(role, weight.shape, passthrough_max_numel=ALL))


# ------------------------------------------------------------------ the algorithm


def slow_gptq(w: Tensor, h: Tensor, scale: Tensor, qmax: int, damp: float) -> Tensor:
    """GPTQ as first written down (optimal brain surgeon, one column at a time): quantize
    column j, spread its error over the later columns with row j of the current inverse
    Hessian, then remove j from that inverse explicitly. No blocks, no Cholesky."""
    w = w.double().clone()
    h = h.double() + damp * h.diagonal().mean() * torch.eye(h.size(0), dtype=torch.float64)
    hinv = torch.linalg.inv(h)
    s = scale.double()
    q = torch.zeros_like(w)
    for j in range(w.size(1)):
        q[:, j] = torch.clamp(torch.round(w[:, j] / s), -qmax, qmax)
        err = (w[:, j] - q[:, j] * s) / hinv[j, j]
        w[:, j + 1 :] -= err[:, None] * hinv[j, j + 1 :][None, :]
        hinv = hinv - hinv[:, j : j + 1] @ hinv[j : j + 1, :] / hinv[j, j]
    return q.to(torch.int8)


def problem(rows: int, cols: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Weights, correlated inputs with unequal energies, and their Hessian XᵀX/n."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen) * 0.1
    mix = torch.randn(cols, cols, generator=gen) / cols**0.5 + torch.eye(cols)
    x = torch.randn(4 * cols, cols, generator=gen) @ mix * torch.linspace(0.2, 3.0, cols)
    return w, x, x.T.double() @ x.double() / x.size(0)


@pytest.mark.parametrize("qmax", [31, 127])
@pytest.mark.parametrize("block", [1, 7, 128])
def test_blocked_gptq_equals_the_slow_column_by_column_algorithm(qmax: int, block: int) -> None:
    # Both run in float64 and differ only in summation order (~1e-13 relative); an integer
    # would differ only if a value fell within that of a rounding boundary, which these
    # seeded inputs do not, so the integers must agree exactly.
    w, _, h = problem(24, 40, seed=qmax + block)
    scale = quantize(w, Scheme.INT6 if qmax == 31 else Scheme.INT8).scale
    got = gptq_quantize(w, h, scale, qmax=qmax, block=block, damp=0.01, act_order=False)
    want = slow_gptq(w, h, scale, qmax, damp=0.01)
    assert torch.equal(got.values, want)
    assert got.scheme is (Scheme.INT6 if qmax == 31 else Scheme.INT8)
    assert torch.equal(got.scale, scale)
    # Not vacuous: error feedback moved many integers away from plain rounding.
    rounded = torch.round(w / scale.float()[:, None]).clamp(-qmax, qmax).to(torch.int8)
    assert (got.values != rounded).float().mean() > 0.05


def test_act_order_is_the_slow_algorithm_on_permuted_columns_unpermuted() -> None:
    w, _, h = problem(16, 48, seed=3)
    scale = quantize(w, Scheme.INT6).scale
    order = torch.argsort(h.diagonal(), descending=True)
    assert not torch.equal(order, torch.arange(48))
    want = torch.empty(16, 48, dtype=torch.int8)
    want[:, order] = slow_gptq(w[:, order], h[order][:, order], scale, 31, damp=0.01)
    got = gptq_quantize(w, h, scale, block=5, act_order=True)
    assert torch.equal(got.values, want)
    assert not torch.equal(got.values, gptq_quantize(w, h, scale, act_order=False).values)


def test_act_order_result_does_not_depend_on_the_order_of_the_inputs() -> None:
    w, _, h = problem(16, 40, seed=4)
    scale = quantize(w, Scheme.INT6).scale
    p = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    plain = gptq_quantize(w, h, scale, block=8)
    shuffled = gptq_quantize(w[:, p], h[p][:, p], scale, block=8)
    assert torch.equal(shuffled.values, plain.values[:, p])


@pytest.mark.parametrize("act_order", [True, False])
def test_diagonal_hessian_gives_round_to_nearest(act_order: bool) -> None:
    # Independent inputs: no column can absorb another's error, so GPTQ must round.
    w, _, _ = problem(32, 64, seed=5)
    h = torch.diag(torch.linspace(0.5, 4.0, 64)[torch.randperm(64)]).double()
    expected = quantize(w, Scheme.INT6)
    got = gptq_quantize(w, h, expected.scale, block=16, act_order=act_order)
    assert torch.equal(got.values, expected.values)


def test_dead_inputs_get_zero_weights_and_the_rest_stays_finite() -> None:
    w, x, _ = problem(16, 32, seed=6)
    x[:, [3, 17]] = 0
    h = x.T.double() @ x.double() / x.size(0)
    scale = quantize(w, Scheme.INT6).scale
    got = gptq_quantize(w, h, scale, block=8)
    assert not got.values[:, [3, 17]].any()
    assert got.values[:, 0].any()
    assert output_error(w, got, x) < output_error(w, quantize(w, Scheme.INT6), x)


def test_singular_undamped_hessian_falls_back_to_round_to_nearest() -> None:
    w, x, _ = problem(8, 16, seed=9)
    x = x[:5]  # five inputs for sixteen columns: H has rank 5, no Cholesky without damping
    h = x.T.double() @ x.double() / x.size(0)
    expected = quantize(w, Scheme.INT6)
    assert torch.equal(gptq_quantize(w, h, expected.scale, damp=0.0).values, expected.values)
    assert not torch.equal(gptq_quantize(w, h, expected.scale).values, expected.values)


def test_keep_better_rows_takes_rounding_where_gptq_lost() -> None:
    w, x, h = problem(12, 32, seed=10)
    ref = quantize(w, Scheme.INT6)
    gptq = gptq_quantize(w, h, ref.scale, block=8)
    spoiled = gptq.values.clone()
    spoiled[:4] = (spoiled[:4] + 3).clamp(-31, 31)  # rows 0-3 now far worse than rounding
    best = keep_better_rows(w, h, QTensor(Scheme.INT6, spoiled, ref.scale), ref)
    assert torch.equal(best.values[:4], ref.values[:4])
    assert torch.equal(best.values[4:], gptq.values[4:])
    assert not torch.equal(best.values[4:], ref.values[4:])
    assert output_error(w, best, x) <= output_error(w, ref, x)


def test_bad_qmax_is_refused() -> None:
    w, _, h = problem(4, 8, seed=7)
    with pytest.raises(ValueError, match="qmax 15"):
        gptq_quantize(w, h, quantize(w, Scheme.INT6).scale, qmax=15)


def test_output_error_is_the_frobenius_norm_of_the_output_difference() -> None:
    w, x, _ = problem(8, 16, seed=8)
    qt = quantize(w, Scheme.INT6)
    expected = torch.linalg.norm(x @ w.T - x @ qt.dequantize().T).item()
    assert output_error(w, qt, x) == pytest.approx(expected, rel=1e-5)
    assert output_error(w, QTensor(Scheme.FP16, w.clone()), x) == 0.0


# ------------------------------------------------------------------ on the model


@pytest.mark.parametrize("fixture", ["model", "variant"])
def test_every_matrix_has_at_most_rtn_output_error(
    request: pytest.FixtureRequest, fixture: str, batches: list[Tensor]
) -> None:
    model = request.getfixturevalue(fixture)
    tensors = quantize_model(model, batches, block=32, passthrough_max_numel=ALL)
    inputs = linear_inputs(model, batches)
    state = model.state_dict()
    ratios = {}
    for name, xs in inputs.items():
        w, qt, ref = state[name], tensors[name], rtn(model, name)
        qmax = QMAX[qt.scheme]
        assert qt.values.dtype is torch.int8 and qt.values.shape == w.shape
        assert int(qt.values.abs().max()) <= qmax
        assert torch.equal(qt.scale, ref.scale)
        x = torch.cat(xs)
        ratios[name] = output_error(w, qt, x) / output_error(w, ref, x)
    assert set(ratios) == set(quantized_linears(model, ALL))
    assert max(ratios.values()) <= 1 + 1e-9, ratios  # float64 round-off between H and X
    assert sum(r < 0.99 for r in ratios.values()) >= 0.9 * len(ratios), ratios
    if fixture == "variant":
        assert tensors["lm_head.weight"].scheme is Scheme.INT8
        assert ratios["lm_head.weight"] < 0.99


def test_plain_gptq_beats_rtn_and_act_order_helps(model: GPT, batches: list[Tensor]) -> None:
    """Without the per-row safeguard, on the tiny model's real calibration inputs."""
    hessians = collect_hessians(model, batches, passthrough_max_numel=ALL)
    inputs = linear_inputs(model, batches)
    state = model.state_dict()
    total = {True: 0.0, False: 0.0}
    for name, h in hessians.items():
        w, ref, x = state[name], rtn(model, name), torch.cat(inputs[name])
        rtn_error = output_error(w, ref, x)
        for act_order in total:
            qt = gptq_quantize(w, h, ref.scale, block=32, act_order=act_order)
            error = output_error(w, qt, x)
            assert error < rtn_error, (name, act_order)
            total[act_order] += error**2
    assert total[True] < total[False]


def test_quantize_model_round_trips_through_the_artifact(
    model: GPT, batches: list[Tensor], dataset: Dataset, tmp_path: Path
) -> None:
    before = copy.deepcopy(model.state_dict())
    names: list[str] = []
    tensors = quantize_model(
        model, batches, block=32, progress=names.append, passthrough_max_numel=ALL
    )
    assert names == list(before)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert tensors["blocks.0.mlp.fc.weight"].scheme is Scheme.INT6
    assert same(tensors["tok_emb.weight"], rtn(model, "tok_emb.weight", before["tok_emb.weight"]))

    path = tmp_path / "gptq.golf"
    write_artifact(
        path,
        tensors,
        model.config,
        tokenizer_sha256=dataset.tokenizer_sha256,
        vocab_size=dataset.vocab_size,
    )
    artifact = read_artifact(path)
    assert artifact.schemes == {name: qt.scheme for name, qt in tensors.items()}
    assert all(torch.equal(artifact.tensors[k].values, qt.values) for k, qt in tensors.items())
    ids = batches[0]
    with torch.no_grad():
        loss = model(ids[:, :-1], ids[:, 1:]).item()
        quantized = load_model(artifact)(ids[:, :-1], ids[:, 1:]).item()
    assert quantized == pytest.approx(loss, abs=0.05)


def test_default_threshold_keeps_the_tiny_model_in_fp16(model: GPT, batches: list[Tensor]) -> None:
    tensors = quantize_model(model, batches[:1])
    reference = quantize_state_dict(model.state_dict(), model.parameter_roles())
    assert tensors.keys() == reference.keys()
    assert all(same(qt, reference[name]) for name, qt in tensors.items())
    assert {qt.scheme for qt in tensors.values()} == {Scheme.FP16}


# ------------------------------------------------------------------ Hessians


def test_hessian_of_the_first_query_matrix_equals_xtx_by_hand(
    model: GPT, batches: list[Tensor]
) -> None:
    hessians = collect_hessians(model, batches, passthrough_max_numel=ALL)
    cfg = model.config
    with torch.no_grad():
        xs = []
        for ids in batches:
            x = model.tok_emb(ids) + model.bigram(bigram_hash(ids, cfg.bigram_vocab_size))
            x = model.smear(rms_norm(x))
            mix = model.blocks[0].resid_mix
            xs.append(rms_norm(mix[0] * x + mix[1] * x).reshape(-1, cfg.model_dim))
    x = torch.cat(xs).double()
    assert x.size(0) == 16 * SEQ_LEN
    expected = x.T @ x / x.size(0)
    torch.testing.assert_close(hessians["blocks.0.attn.c_q.weight"], expected)


def test_hessians_cover_every_quantized_linear_and_leave_no_hooks(
    model: GPT, batches: list[Tensor]
) -> None:
    hessians = collect_hessians(model, batches, passthrough_max_numel=ALL)
    state, roles = model.state_dict(), model.parameter_roles()
    tables = {"tok_emb.weight", "bigram.embed.weight", "ve_shared.embed.weight"}
    integer = {
        n
        for n, t in state.items()
        if scheme_for(roles[n], t.shape, passthrough_max_numel=ALL) != "fp16"
    }
    assert set(hessians) == integer - tables
    assert len(hessians) == 4 * 6 + 1  # q, k, v, proj, fc, proj per block; bigram.proj
    for name, h in hessians.items():
        assert h.dtype is torch.float64 and h.shape == (state[name].size(1),) * 2
    assert all(not m._forward_hooks for m in model.modules())
    assert not model.training


def test_recurrent_weights_sum_the_inputs_of_every_pass(
    variant: GPT, batches: list[Tensor]
) -> None:
    hessians = collect_hessians(variant, batches, passthrough_max_numel=ALL)
    inputs = linear_inputs(variant, batches)
    assert len(inputs["blocks.1.mlp.fc.weight"]) == 2 * len(batches)  # runs twice per batch
    assert len(inputs["blocks.0.mlp.fc.weight"]) == len(batches)
    for name in ("blocks.1.mlp.fc.weight", "blocks.2.attn.proj.weight", "lm_head.weight"):
        x = torch.cat(inputs[name]).double()
        torch.testing.assert_close(hessians[name], x.T @ x / x.size(0))


# ------------------------------------------------------------------ calibration data


@pytest.mark.parametrize("source", ["train", "val"])
def test_data_windows_are_seeded_slices_of_their_split(
    source: str, dataset: Dataset, model: GPT
) -> None:
    batches = calibration_batches(source, dataset, model, 10, 32, seed=5)
    assert [tuple(b.shape) for b in batches] == [(8, 32), (2, 32)]
    assert all(b.dtype is torch.int64 for b in batches)
    again = calibration_batches(source, dataset, model, 10, 32, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    other = calibration_batches(source, dataset, model, 10, 32, seed=6)
    assert not torch.equal(batches[0], other[0])
    tokens = dataset.train_tokens() if source == "train" else dataset.val_tokens()
    views = np.lib.stride_tricks.sliding_window_view(np.asarray(tokens), 32)
    for row in torch.cat(batches).numpy():
        assert (views == row).all(axis=1).any()


def test_self_generated_calibration_reads_no_data(model: GPT, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    stub = Dataset(missing, missing / "tokenizer.model", [missing / "v.bin"], [missing / "t.bin"])
    batches = calibration_batches("self", stub, model, 10, 24, seed=3)
    assert [tuple(b.shape) for b in batches] == [(8, 24), (2, 24)]
    ids = torch.cat(batches)
    assert ids.dtype is torch.int64
    assert (ids[:, 0] == BOS_ID).all()
    assert ids.min() >= 0 and ids.max() < model.config.vocab_size
    assert len(ids[:, 1:].unique()) > 50  # sampled at temperature 1, not greedy
    again = torch.cat(calibration_batches("self", stub, model, 10, 24, seed=3))
    assert torch.equal(ids, again)
    assert not torch.equal(ids, torch.cat(calibration_batches("self", stub, model, 10, 24, 4)))
    assert not model.training


def test_unknown_calibration_source_is_a_config_error(dataset: Dataset, model: GPT) -> None:
    with pytest.raises(ConfigError, match="unknown GPTQ calibration source 'test'") as err:
        calibration_batches("test", dataset, model, 4, 16, seed=0)
    assert "\n" not in str(err.value)
