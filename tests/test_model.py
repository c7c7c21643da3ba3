"""GPT and ModelConfig: reference names and shapes, forward API, causality, variants."""

import pytest
import torch

from golf.models.gpt import GPT
from golf.models.registry import expected_shapes
from golf.spec.config import PRESETS, ModelConfig, preset
from golf.spec.errors import ConfigError

# The seed record's exported state dict (reference train_gpt.py, 11L d512, 8/4 heads,
# MLP x3, BigramHash 1024x128, VE 128 -> kv 256 on layers 9,10, VRL gate on layers >= 1).
SEED_SHAPES: dict[str, tuple[int, ...]] = {
    "skip_weights": (5, 512),
    "tok_emb.weight": (1024, 512),
    "bigram.scale": (),
    "bigram.embed.weight": (1024, 128),
    "bigram.proj.weight": (512, 128),
    "smear.gate": (512,),
    "blocks.0.attn_scale": (512,),
    "blocks.0.mlp_scale": (512,),
    "blocks.0.resid_mix": (2, 512),
    "blocks.0.attn.q_gain": (8,),
    "blocks.0.attn.c_q.weight": (512, 512),
    "blocks.0.attn.c_k.weight": (256, 512),
    "blocks.0.attn.c_v.weight": (256, 512),
    "blocks.0.attn.proj.weight": (512, 512),
    "blocks.0.mlp.fc.weight": (1536, 512),
    "blocks.0.mlp.proj.weight": (512, 1536),
    "blocks.1.attn_scale": (512,),
    "blocks.1.mlp_scale": (512,),
    "blocks.1.resid_mix": (2, 512),
    "blocks.1.attn.q_gain": (8,),
    "blocks.1.attn.vrl_gate": (),
    "blocks.1.attn.c_q.weight": (512, 512),
    "blocks.1.attn.c_k.weight": (256, 512),
    "blocks.1.attn.c_v.weight": (256, 512),
    "blocks.1.attn.proj.weight": (512, 512),
    "blocks.1.mlp.fc.weight": (1536, 512),
    "blocks.1.mlp.proj.weight": (512, 1536),
    "blocks.2.attn_scale": (512,),
    "blocks.2.mlp_scale": (512,),
    "blocks.2.resid_mix": (2, 512),
    "blocks.2.attn.q_gain": (8,),
    "blocks.2.attn.vrl_gate": (),
    "blocks.2.attn.c_q.weight": (512, 512),
    "blocks.2.attn.c_k.weight": (256, 512),
    "blocks.2.attn.c_v.weight": (256, 512),
    "blocks.2.attn.proj.weight": (512, 512),
    "blocks.2.mlp.fc.weight": (1536, 512),
    "blocks.2.mlp.proj.weight": (512, 1536),
    "blocks.3.attn_scale": (512,),
    "blocks.3.mlp_scale": (512,),
    "blocks.3.resid_mix": (2, 512),
    "blocks.3.attn.q_gain": (8,),
    "blocks.3.attn.vrl_gate": (),
    "blocks.3.attn.c_q.weight": (512, 512),
    "blocks.3.attn.c_k.weight": (256, 512),
    "blocks.3.attn.c_v.weight": (256, 512),
    "blocks.3.attn.proj.weight": (512, 512),
    "blocks.3.mlp.fc.weight": (1536, 512),
    "blocks.3.mlp.proj.weight": (512, 1536),
    "blocks.4.attn_scale": (512,),
    "blocks.4.mlp_scale": (512,),
    "blocks.4.resid_mix": (2, 512),
    "blocks.4.attn.q_gain": (8,),
    "blocks.4.attn.vrl_gate": (),
    "blocks.4.attn.c_q.weight": (512, 512),
    "blocks.4.attn.c_k.weight": (256, 512),
    "blocks.4.attn.c_v.weight": (256, 512),
    "blocks.4.attn.proj.weight": (512, 512),
    "blocks.4.mlp.fc.weight": (1536, 512),
    "blocks.4.mlp.proj.weight": (512, 1536),
    "blocks.5.attn_scale": (512,),
    "blocks.5.mlp_scale": (512,),
    "blocks.5.resid_mix": (2, 512),
    "blocks.5.attn.q_gain": (8,),
    "blocks.5.attn.vrl_gate": (),
    "blocks.5.attn.c_q.weight": (512, 512),
    "blocks.5.attn.c_k.weight": (256, 512),
    "blocks.5.attn.c_v.weight": (256, 512),
    "blocks.5.attn.proj.weight": (512, 512),
    "blocks.5.mlp.fc.weight": (1536, 512),
    "blocks.5.mlp.proj.weight": (512, 1536),
    "blocks.6.attn_scale": (512,),
    "blocks.6.mlp_scale": (512,),
    "blocks.6.resid_mix": (2, 512),
    "blocks.6.attn.q_gain": (8,),
    "blocks.6.attn.vrl_gate": (),
    "blocks.6.attn.c_q.weight": (512, 512),
    "blocks.6.attn.c_k.weight": (256, 512),
    "blocks.6.attn.c_v.weight": (256, 512),
    "blocks.6.attn.proj.weight": (512, 512),
    "blocks.6.mlp.fc.weight": (1536, 512),
    "blocks.6.mlp.proj.weight": (512, 1536),
    "blocks.7.attn_scale": (512,),
    "blocks.7.mlp_scale": (512,),
    "blocks.7.resid_mix": (2, 512),
    "blocks.7.attn.q_gain": (8,),
    "blocks.7.attn.vrl_gate": (),
    "blocks.7.attn.c_q.weight": (512, 512),
    "blocks.7.attn.c_k.weight": (256, 512),
    "blocks.7.attn.c_v.weight": (256, 512),
    "blocks.7.attn.proj.weight": (512, 512),
    "blocks.7.mlp.fc.weight": (1536, 512),
    "blocks.7.mlp.proj.weight": (512, 1536),
    "blocks.8.attn_scale": (512,),
    "blocks.8.mlp_scale": (512,),
    "blocks.8.resid_mix": (2, 512),
    "blocks.8.attn.q_gain": (8,),
    "blocks.8.attn.vrl_gate": (),
    "blocks.8.attn.c_q.weight": (512, 512),
    "blocks.8.attn.c_k.weight": (256, 512),
    "blocks.8.attn.c_v.weight": (256, 512),
    "blocks.8.attn.proj.weight": (512, 512),
    "blocks.8.mlp.fc.weight": (1536, 512),
    "blocks.8.mlp.proj.weight": (512, 1536),
    "blocks.9.attn_scale": (512,),
    "blocks.9.mlp_scale": (512,),
    "blocks.9.resid_mix": (2, 512),
    "blocks.9.attn.q_gain": (8,),
    "blocks.9.attn.vrl_gate": (),
    "blocks.9.attn.c_q.weight": (512, 512),
    "blocks.9.attn.c_k.weight": (256, 512),
    "blocks.9.attn.c_v.weight": (256, 512),
    "blocks.9.attn.proj.weight": (512, 512),
    "blocks.9.mlp.fc.weight": (1536, 512),
    "blocks.9.mlp.proj.weight": (512, 1536),
    "blocks.10.attn_scale": (512,),
    "blocks.10.mlp_scale": (512,),
    "blocks.10.resid_mix": (2, 512),
    "blocks.10.attn.q_gain": (8,),
    "blocks.10.attn.vrl_gate": (),
    "blocks.10.attn.c_q.weight": (512, 512),
    "blocks.10.attn.c_k.weight": (256, 512),
    "blocks.10.attn.c_v.weight": (256, 512),
    "blocks.10.attn.proj.weight": (512, 512),
    "blocks.10.mlp.fc.weight": (1536, 512),
    "blocks.10.mlp.proj.weight": (512, 1536),
    "ve_shared.scale": (),
    "ve_shared.embed.weight": (1024, 128),
    "ve_shared.proj.weight": (256, 128),
    "ve_layer_scales.0": (1,),
    "ve_layer_scales.1": (1,),
}

TINY = preset("tiny")
V = TINY.vocab_size


def _ids(b: int = 2, t: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def _model(cfg: ModelConfig = TINY, seed: int = 0) -> GPT:
    """A model whose zero-initialised projections are randomised, so every path matters."""
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight") or name.endswith("embed.weight"):
                p.normal_(0, 0.05)
    return model


def test_seed_state_dict_names_and_shapes() -> None:
    assert expected_shapes(preset("seed")) == SEED_SHAPES
    assert len(SEED_SHAPES) == 131


def test_expected_shapes_match_a_built_model() -> None:
    for cfg in (preset("seed"), TINY, TINY.replace(recur_layers=(1, 2), tie_embeddings=False)):
        built = {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}
        assert expected_shapes(cfg) == built


def test_presets() -> None:
    seed = preset("seed")
    assert seed == ModelConfig() == PRESETS["seed"]
    assert (seed.num_layers, seed.model_dim, seed.num_heads, seed.num_kv_heads) == (11, 512, 8, 4)
    assert (seed.mlp_mult, seed.vocab_size, seed.qk_gain_init, seed.xsa_last_n) == (
        3.0,
        1024,
        5.25,
        11,
    )
    assert (seed.bigram_vocab_size, seed.bigram_dim, seed.rope_dims) == (1024, 128, 16)
    assert (seed.ve_layers, seed.value_residual, seed.recur_layers) == ((9, 10), "gate", ())
    assert seed.ln_scale and seed.tie_embeddings and seed.logit_softcap == 30.0
    assert seed.replace(recur_layers=(4, 5)).virtual_layers == (
        0,
        1,
        2,
        3,
        4,
        5,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
    )
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_forward_api() -> None:
    model = _model()
    ids = _ids()
    hidden = model.forward_hidden(ids)
    assert hidden.shape == (2, 32, TINY.model_dim) and hidden.dtype == torch.float32
    logits = model.logits(hidden)
    assert logits.shape == (2, 32, V)
    w = model.head_weight
    assert w is model.tok_emb.weight and w.shape == (V, TINY.model_dim)
    c = TINY.logit_softcap
    torch.testing.assert_close(logits, c * torch.tanh(hidden @ w.T / c))
    loss = model(ids, ids.roll(-1, 1))
    assert loss.ndim == 0
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.roll(-1, 1).flatten())
    torch.testing.assert_close(loss, nll)
    assert model.config is TINY


def test_untied_head() -> None:
    model = _model(TINY.replace(tie_embeddings=False))
    assert model.head_weight is model.lm_head.weight
    assert not torch.equal(model.head_weight, model.tok_emb.weight)


def test_causality() -> None:
    model = _model(TINY.replace(recur_layers=(1,), skip_gates=True, attn_gate=True))
    ids = _ids(1, 48)
    base = model.forward_hidden(ids)
    for j in (0, 1, 17, 47):
        changed = ids.clone()
        changed[0, j] = (changed[0, j] + 1) % V
        out = model.forward_hidden(changed)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, j], base[:, j])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_dim": 60}, "num_heads"),
        ({"num_kv_heads": 3}, "num_kv_heads"),
        ({"model_dim": 72, "num_heads": 8, "num_kv_heads": 2}, "head_dim"),
        ({"rope_dims": 20}, "rope_dims"),
        ({"rope_dims": 5}, "rope_dims"),
        ({"xsa_last_n": 5}, "xsa_last_n"),
        ({"ve_layers": [4]}, "ve_layers"),
        ({"ve_layers": [2, 2]}, "ve_layers"),
        ({"ve_layers": []}, "ve_layers"),
        ({"recur_layers": [2, 1]}, "recur_layers"),
        ({"recur_layers": [9]}, "recur_layers"),
        ({"value_residual": "mix"}, "value_residual"),
        ({"num_layers": 0}, "num_layers"),
        ({"logit_softcap": 0}, "logit_softcap"),
        ({"bigram_vocab_size": 1}, "bigram_vocab_size"),
        ({"qk_gain": 1.0}, "qk_gain"),
        ({"num_layers": 10**9}, "num_layers"),
        ({"mlp_mult": 1e308}, "mlp_mult"),
        ({"logit_softcap": float("nan")}, "logit_softcap"),
        ({"model_dim": 2**40, "num_heads": 8}, "model_dim"),
    ],
)
def test_invalid_configs_are_one_line_config_errors(change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        ModelConfig.parse(TINY.model_dump() | change)
    msg = str(info.value)
    assert "\n" not in msg and field in msg


def test_parse_round_trips_json() -> None:
    for cfg in PRESETS.values():
        assert ModelConfig.parse(cfg.model_dump(mode="json")) == cfg
    with pytest.raises(ConfigError, match="mapping"):
        ModelConfig.parse([1, 2])  # type: ignore[arg-type]


VARIANTS: dict[str, dict] = {
    "base": {},
    "vrl-none": {"value_residual": "none"},
    "vrl-alpha": {"value_residual": "alpha"},
    "skip-gates": {"skip_gates": True},
    "attn-gate": {"attn_gate": True},
    "dtg": {"dtg": True},
    "recur": {"recur_layers": (1, 2), "ve_layers": (4, 5)},
    "no-bigram-ve-smear": {"bigram_vocab_size": 0, "ve_enabled": False, "smear": False},
    "full-rope-no-xsa-no-ln-scale": {"rope_dims": 0, "xsa_last_n": 0, "ln_scale": False},
    "untied-odd-layers": {
        "tie_embeddings": False,
        "num_layers": 3,
        "xsa_last_n": 3,
        "ve_layers": (2,),
    },
    "bigram-dim-eq-model": {"bigram_dim": 64, "ve_dim": 32},
}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_builds_runs_and_trains(name: str) -> None:
    cfg = TINY.replace(**VARIANTS[name])
    model = _model(cfg).train()
    ids = _ids(2, 24)
    loss = model(ids, ids.roll(-1, 1))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.tok_emb.weight.grad is not None
    assert expected_shapes(cfg) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_variant_tensor_names() -> None:
    def names(**kw: object) -> set[str]:
        return set(expected_shapes(TINY.replace(**kw)))

    gate, alpha = names(value_residual="gate"), names(value_residual="alpha")
    assert "blocks.0.attn.vrl_gate" not in gate and "blocks.3.attn.vrl_gate" in gate
    assert {"blocks.0.attn.vrl_alpha", "blocks.3.attn.vrl_alpha"} <= alpha
    assert not any("vrl" in n for n in names(value_residual="none"))
    assert "skip_gates" in names(skip_gates=True) and "skip_gates" not in gate
    assert {"blocks.1.attn.attn_gate.weight", "blocks.1.attn.attn_gate.bias"} <= names(
        attn_gate=True
    )
    assert "blocks.2.dtg_gate.bias" in names(dtg=True)
    assert not any(
        n.startswith(("bigram.", "ve_")) for n in names(bigram_vocab_size=0, ve_enabled=False)
    )
    assert "bigram.proj.weight" not in names(bigram_dim=TINY.model_dim)
    recur = expected_shapes(TINY.replace(recur_layers=(1, 2)))
    # Six virtual layers: blocks 4 and 5 own control tensors only; the skips span 3 pairs.
    assert recur["skip_weights"] == (3, TINY.model_dim)
    assert "blocks.5.attn.q_gain" in recur and "blocks.5.resid_mix" in recur
    assert not any(
        n.startswith(("blocks.4.attn.c_", "blocks.4.mlp.", "blocks.5.mlp.")) for n in recur
    )


@pytest.mark.parametrize(
    ("change", "neutral"),
    [
        ({"value_residual": "gate"}, {"attn.vrl_gate": -100.0}),
        ({"value_residual": "alpha"}, {"attn.vrl_alpha": -100.0}),
        ({"attn_gate": True}, {"attn.attn_gate.bias": 100.0}),
        ({"dtg": True}, {"dtg_gate.bias": 100.0}),
    ],
)
def test_saturated_gate_reduces_to_base(change: dict, neutral: dict[str, float]) -> None:
    """Each gate, saturated to its identity, gives the model without that knob."""
    base_cfg = TINY.replace(value_residual="none")
    base = _model(base_cfg)
    model = GPT(base_cfg.replace(**change)).eval()
    state = base.state_dict()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in state:
                p.copy_(state[name])
            elif any(name.endswith(suffix) for suffix in neutral):
                p.fill_(next(v for s, v in neutral.items() if name.endswith(s)))
    ids = _ids()
    torch.testing.assert_close(model.forward_hidden(ids), base.forward_hidden(ids))


def test_deterministic_under_seed() -> None:
    def build(seed: int) -> GPT:
        torch.manual_seed(seed)
        return GPT(TINY)

    a, b, c = build(0).state_dict(), build(0).state_dict(), build(1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    ids = _ids()
    assert torch.equal(model.forward_hidden(ids), model.forward_hidden(ids))


def test_random_init_is_faithful_and_varied() -> None:
    torch.manual_seed(0)
    model = GPT(TINY).eval()
    sd = model.state_dict()
    # Reference init: output projections and the bigram table start at zero.
    assert not sd["blocks.0.attn.proj.weight"].any() and not sd["blocks.0.mlp.proj.weight"].any()
    assert not sd["bigram.embed.weight"].any()
    assert sd["blocks.1.attn.vrl_gate"].item() == -1.5
    assert torch.equal(sd["blocks.0.attn.q_gain"], torch.full((4,), TINY.qk_gain_init))
    logits = model.logits(model.forward_hidden(_ids()))
    assert logits.std(dim=-1).min() > 0 and logits[0, 0].ne(logits[0, 1]).any()
