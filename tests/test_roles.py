"""Parameter roles: declared by the model, read by quantization and the optimizers.

The role-based scheme must equal, tensor for tensor, the name-based rule it replaced
(kept below only as the literal expectation), for every preset and structural variant.
"""

import copy

import pytest
import torch
from torch import nn

from golf.formats.quant import PASSTHROUGH_MAX_NUMEL, Scheme, quantize_state_dict, scheme_for
from golf.models.gpt import GPT
from golf.models.registry import roles_for
from golf.models.roles import MissingRole, Role, role, roles_of
from golf.spec.config import ModelConfig, preset
from trainer.gptq import quantized_linears
from trainer.qat import int6_linears
from trainer.train import param_groups

# ---------------------------------------------------------------- the old rule, literally

OLD_CONTROL_PATTERNS = (
    "attn_scale",
    "mlp_scale",
    "resid_mix",
    "q_gain",
    "skip_weight",
    "skip_gates",
    "smear",
    "dtg_gate",
    "ve_layer_scales",
    "ve_shared.scale",
    "attn_gate",
    "vr_lambda",
    "vrl_gate",
    "vrl_alpha",
)


def old_category(name: str) -> str:
    if "tok_emb" in name or "lm_head" in name:
        return "embed"
    if ".mlp." in name:
        return "mlp"
    if ".attn." in name or ".proj." in name:
        return "attn"
    return "other"


def old_scheme_for(name: str, shape: tuple[int, ...], passthrough_max_numel: int) -> Scheme:
    numel = 1
    for dim in shape:
        numel *= dim
    if numel <= passthrough_max_numel or any(p in name for p in OLD_CONTROL_PATTERNS):
        return Scheme.FP16
    if len(shape) != 2:
        return Scheme.FP16
    return Scheme.INT6 if old_category(name) in ("attn", "mlp") else Scheme.INT8


def old_param_groups(model: nn.Module) -> tuple[list[str], list[str], list[str]]:
    matrices, embeddings, scalars = [], [], []
    for name, p in model.named_parameters():
        if name in ("tok_emb.weight", "lm_head.weight") or name.endswith(".embed.weight"):
            embeddings.append(name)
        elif p.ndim == 2 and not any(pat in name for pat in OLD_CONTROL_PATTERNS):
            matrices.append(name)
        else:
            scalars.append(name)
    return matrices, embeddings, scalars


# ---------------------------------------------------------------- configs

TINY = preset("tiny")
CONFIGS: dict[str, ModelConfig] = {
    "seed": preset("seed"),
    "tiny": TINY,
    "vrl-gate": TINY.replace(value_residual="gate"),
    "vrl-alpha": TINY.replace(value_residual="alpha"),
    "vrl-none": TINY.replace(value_residual="none"),
    "skip-gates": TINY.replace(skip_gates=True),
    "attn-gate": TINY.replace(attn_gate=True),
    "no-ve": TINY.replace(ve_enabled=False),
    "no-bigram": TINY.replace(bigram_vocab_size=0),
    "bigram-full-width": TINY.replace(bigram_dim=TINY.model_dim),
    "no-smear": TINY.replace(smear=False),
    "dtg": TINY.replace(dtg=True),
    "untied-head": TINY.replace(tie_embeddings=False),
    "recurrence": TINY.replace(recur_layers=(1, 2)),
    "everything": TINY.replace(
        value_residual="alpha",
        skip_gates=True,
        attn_gate=True,
        dtg=True,
        tie_embeddings=False,
        recur_layers=(1,),
    ),
    "seed-everything": preset("seed").replace(
        skip_gates=True, attn_gate=True, dtg=True, tie_embeddings=False, recur_layers=(4, 5)
    ),
}


def meta(config: ModelConfig) -> GPT:
    with torch.device("meta"):
        return GPT(config)


@pytest.mark.parametrize("threshold", [0, 1, 4096, PASSTHROUGH_MAX_NUMEL])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_role_scheme_equals_the_old_name_rule(name: str, threshold: int) -> None:
    model = meta(CONFIGS[name])
    roles = model.parameter_roles()
    shapes = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    assert roles.keys() == shapes.keys()
    got = {n: scheme_for(roles[n], s, passthrough_max_numel=threshold) for n, s in shapes.items()}
    old = {n: old_scheme_for(n, s, threshold) for n, s in shapes.items()}
    assert got == old


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_optimizer_groups_equal_the_old_name_rule(name: str) -> None:
    model = meta(CONFIGS[name])
    names = {id(p): n for n, p in model.named_parameters()}
    got = tuple([names[id(p)] for p in group] for group in param_groups(model))
    assert got == old_param_groups(model)  # same members, same order


def test_roles_for_matches_a_built_model() -> None:
    cfg = CONFIGS["everything"]
    torch.manual_seed(0)
    assert roles_for(cfg) == GPT(cfg).parameter_roles()


def test_each_tensor_kind_has_its_role() -> None:
    roles = meta(CONFIGS["seed-everything"]).parameter_roles()
    assert roles["tok_emb.weight"] is Role.EMBEDDING
    assert roles["lm_head.weight"] is Role.EMBEDDING
    assert roles["bigram.embed.weight"] is Role.EMBEDDING
    assert roles["ve_shared.embed.weight"] is Role.EMBEDDING
    assert roles["blocks.0.attn.c_q.weight"] is Role.MATRIX
    assert roles["blocks.3.mlp.proj.weight"] is Role.MATRIX
    assert roles["bigram.proj.weight"] is Role.MATRIX
    assert roles["ve_shared.proj.weight"] is Role.MATRIX
    for control in (
        "blocks.0.attn.attn_gate.weight",
        "blocks.0.attn.attn_gate.bias",
        "blocks.4.dtg_gate.weight",
        "blocks.1.attn.vrl_gate",
        "skip_gates",
        "skip_weights",
        "bigram.scale",
        "ve_shared.scale",
        "ve_layer_scales.1",
        "smear.gate",
    ):
        assert roles[control] is Role.CONTROL, control


# ---------------------------------------------------------------- untagged is an error


class WithUntagged(GPT):
    """A variant that forgot to declare the role of a new matrix."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        # Big and 2-D: the old name rule would have quietly stored it in int8.
        self.adapter = nn.Linear(config.model_dim, 2048, bias=False)


def test_an_untagged_parameter_is_an_error_not_silently_quantized() -> None:
    model = WithUntagged(TINY)
    with pytest.raises(MissingRole, match="adapter.weight"):
        model.parameter_roles()
    state = model.state_dict()
    with pytest.raises(MissingRole, match="adapter.weight"):
        quantize_state_dict(state, roles_for(TINY), passthrough_max_numel=0)
    with pytest.raises(MissingRole, match="adapter.weight"):
        param_groups(model)
    with pytest.raises(MissingRole, match="adapter.weight"):
        int6_linears(model, 0)
    with pytest.raises(MissingRole, match="adapter.weight"):
        quantized_linears(model, 0)


def test_an_untagged_parameter_fails_at_construction() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ok = role(nn.Parameter(torch.ones(3)), Role.CONTROL)
            self.w = nn.Parameter(torch.ones(3, 3))

    with pytest.raises(MissingRole, match=r"Bad tensor w declares no role"):
        roles_of(Bad())
    original = GPT._init_weights

    def add_untagged(self: GPT) -> None:
        original(self)
        self.stray = nn.Parameter(torch.zeros(4))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GPT, "_init_weights", add_untagged)
        with pytest.raises(MissingRole, match="stray"):
            GPT(TINY)


def test_roles_survive_copies_and_moves() -> None:
    torch.manual_seed(0)
    model = GPT(CONFIGS["everything"])
    roles = model.parameter_roles()
    assert copy.deepcopy(model).parameter_roles() == roles
    assert model.to(torch.float64).parameter_roles() == roles
    assert copy.deepcopy(model).to("meta").parameter_roles() == roles


def test_role_tags_modules_and_parameters() -> None:
    lin = role(nn.Linear(2, 3), Role.CONTROL)
    assert roles_of(lin) == {"weight": Role.CONTROL, "bias": Role.CONTROL}
    p = role(nn.Parameter(torch.zeros(2)), "embedding")  # type: ignore[arg-type]
    assert roles_of(nn.ParameterList([p])) == {"0": Role.EMBEDDING}
    with pytest.raises(ValueError):
        role(nn.Parameter(torch.zeros(2)), "head")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        scheme_for("head", (4, 4))  # type: ignore[arg-type]
