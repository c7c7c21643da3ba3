import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from golf.formats.quant import (
    QMAX,
    QTensor,
    Scheme,
    dequantize_state_dict,
    quantize,
    quantize_state_dict,
    row_scale,
    scheme_for,
)
from golf.models.roles import MissingRole, Role

M, E, C = Role.MATRIX, Role.EMBEDDING, Role.CONTROL

# Names, roles and shapes of the reference 11-layer SP1024 model (d 512, 4 KV heads,
# MLP x3, BigramHash 2048x128, value embeddings 128 -> 256).
REFERENCE = {
    "tok_emb.weight": ((1024, 512), E, Scheme.INT8),
    "lm_head.weight": ((1024, 512), E, Scheme.INT8),
    "blocks.0.attn.c_q.weight": ((512, 512), M, Scheme.INT6),
    "blocks.0.attn.c_k.weight": ((256, 512), M, Scheme.INT6),
    "blocks.0.attn.c_v.weight": ((256, 512), M, Scheme.INT6),
    "blocks.0.attn.proj.weight": ((512, 512), M, Scheme.INT6),
    "blocks.0.mlp.fc.weight": ((1536, 512), M, Scheme.INT6),
    "blocks.10.mlp.proj.weight": ((512, 1536), M, Scheme.INT6),
    "bigram.embed.weight": ((2048, 128), E, Scheme.INT8),
    "bigram.proj.weight": ((512, 128), M, Scheme.FP16),  # exactly 65536: kept
    "ve_shared.embed.weight": ((1024, 128), E, Scheme.INT8),
    "ve_shared.proj.weight": ((256, 128), M, Scheme.FP16),
    "ve_shared.scale": ((), C, Scheme.FP16),
    "blocks.0.attn_scale": ((512,), C, Scheme.FP16),
    "blocks.0.resid_mix": ((2, 512), C, Scheme.FP16),
    "blocks.3.attn.q_gain": ((8,), C, Scheme.FP16),
    "blocks.3.attn.vrl_gate": ((), C, Scheme.FP16),
    "skip_weights": ((5, 512), C, Scheme.FP16),
    "smear.gate": ((512,), C, Scheme.FP16),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_scheme_for_matches_reference_rule(name: str) -> None:
    shape, role, scheme = REFERENCE[name]
    assert scheme_for(role, shape) is scheme


def test_scheme_for_large_control_and_vectors_stay_fp16() -> None:
    assert scheme_for(C, (8, 100_000)) is Scheme.FP16
    assert scheme_for(C, (8, 100_000), passthrough_max_numel=0) is Scheme.FP16
    assert scheme_for(M, (100_000,)) is Scheme.FP16
    assert scheme_for(E, (4, 100, 100), passthrough_max_numel=0) is Scheme.FP16
    assert scheme_for(M, (64, 64)) is Scheme.FP16
    assert scheme_for(M, (64, 64), passthrough_max_numel=0) is Scheme.INT6
    assert scheme_for(E, (64, 32), passthrough_max_numel=0) is Scheme.INT8


def _matrices() -> st.SearchStrategy[torch.Tensor]:
    def build(rows: int, cols: int, seed: int, log_scale: float) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        t = torch.randn(rows, cols, generator=g) * 10.0**log_scale
        t[0] = 0.0  # an all-zero row must still get a positive scale
        return t

    return st.builds(
        build,
        st.integers(1, 9),
        st.integers(1, 40),
        st.integers(0, 2**31),
        st.floats(-6, 3),
    )


@settings(max_examples=60, deadline=None)
@given(t=_matrices(), scheme=st.sampled_from([Scheme.INT6, Scheme.INT8]))
def test_round_to_nearest_invariants(t: torch.Tensor, scheme: Scheme) -> None:
    qt = quantize(t, scheme)
    qmax = QMAX[scheme]
    assert qt.values.dtype == torch.int8 and qt.values.shape == t.shape
    assert qt.scale is not None and qt.scale.dtype == torch.float16
    assert qt.scale.shape == (t.shape[0],)
    assert bool((qt.scale > 0).all()) and bool(torch.isfinite(qt.scale).all())
    assert int(qt.values.abs().max()) <= qmax
    err = (qt.dequantize() - t).abs()
    # Rounding error is at most half a step (plus fp16-scale slack at the row max).
    bound = qt.scale.float()[:, None] * 0.5 + t.abs() * 1e-3 + 1e-30
    assert bool((err <= bound).all())


def test_dequantize_is_the_reference_formula() -> None:
    q = torch.tensor([[-31, 0, 31], [5, -7, 1]], dtype=torch.int8)
    s = torch.tensor([0.5, 0.01], dtype=torch.float16)
    out = QTensor(Scheme.INT6, q, s).dequantize()
    assert out.dtype == torch.float32
    assert torch.equal(out, q.float() * s.float().view(2, 1))


def test_fp16_passthrough_and_errors() -> None:
    t = torch.tensor([1.0, 1e-3, -2.5, 70000.0])
    qt = quantize(t, Scheme.FP16)
    assert qt.scale is None and qt.values.dtype == torch.float16
    assert torch.equal(qt.dequantize(), t.half().float())
    with pytest.raises(ValueError, match="matrix"):
        quantize(t, Scheme.INT6)


def test_state_dict_helpers_follow_scheme_for() -> None:
    state = {
        "blocks.0.attn.c_q.weight": torch.randn(16, 16),
        "tok_emb.weight": torch.randn(32, 16),
        "blocks.0.attn_scale": torch.ones(16),
    }
    roles = {"blocks.0.attn.c_q.weight": M, "tok_emb.weight": E, "blocks.0.attn_scale": C}
    qts = quantize_state_dict(state, roles, passthrough_max_numel=0)
    assert [qts[n].scheme for n in state] == [Scheme.INT6, Scheme.INT8, Scheme.FP16]
    deq = dequantize_state_dict(qts)
    assert set(deq) == set(state)
    assert torch.equal(deq["blocks.0.attn_scale"], state["blocks.0.attn_scale"])
    del roles["tok_emb.weight"]
    with pytest.raises(MissingRole, match="tok_emb.weight"):
        quantize_state_dict(state, roles, passthrough_max_numel=0)


def test_row_scale_is_the_literal_rule() -> None:
    t = torch.tensor([[0.0, 0.0, 0.0], [-3.1, 1.0, 2.0], [1e-12, 0.0, -1e-12], [1e9, 0.0, 1.0]])
    scale = row_scale(t, 31)
    assert scale.dtype == torch.float16
    fp16 = torch.finfo(torch.float16)
    expected = [1.0, 3.1 / 31, fp16.tiny, fp16.max]
    assert scale.tolist() == torch.tensor(expected).to(torch.float16).tolist()
    assert torch.equal(quantize(t, Scheme.INT6).scale, scale)
    assert torch.equal(quantize(t, Scheme.INT8).scale, row_scale(t, 127))
