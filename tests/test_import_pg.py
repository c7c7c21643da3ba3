"""Import of reference `.ptz` files, checked against a writer of that format kept here:
the dequantized weights must be identical before and after."""

import io
import lzma
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from artifact_corpus import Trap
from torch import Tensor

from golf.formats.artifact import (
    BadMetadata,
    ConfigInvalid,
    DtypeMismatch,
    MissingTensor,
    NotAnArtifact,
    ShapeMismatch,
    UnexpectedTensor,
    load_model,
)
from golf.formats.pg import import_reference
from golf.formats.quant import Scheme
from golf.models.gpt import GPT
from golf.spec.config import ModelConfig, preset

# What the tensors cannot tell, spelled as the reference Hyperparameters would be.
HPARAMS = {
    "logit_softcap": 20.0,
    "rope_base": 5000.0,
    "rope_dims": 8,
    "qk_gain_init": 4.0,
    "ln_scale": "1",
    "xsa_last_n": 11,  # more than the layers: the reference then runs XSA everywhere
    "ve_layers": "2,3",
    "rope_train_seq_len": 256,
    "seed": 42,
    "train_batch_tokens": 786432,  # training-only fields are ignored
}


def _config(**changes: Any) -> ModelConfig:
    doc = preset("tiny").model_dump() | {
        "logit_softcap": 20.0,
        "rope_base": 5000.0,
        "qk_gain_init": 4.0,
    }
    config = ModelConfig.parse(doc | changes)
    return ModelConfig.parse(config.model_dump() | {"xsa_last_n": config.num_virtual_layers})


def _weights(config: ModelConfig) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(7)
    state = GPT(config).state_dict()
    return {n: t + 0.02 * torch.randn(t.shape, generator=g) for n, t in state.items()}


def _reference_quantize(state: dict[str, Tensor], banked: bool, n_layers: int) -> dict:
    """The reference mixed int6 writer, re-stated: per-row absmax scales floored at
    1/clip, attention/MLP matrices int6, other matrices int8, small tensors fp16.
    With `banked`, block matrices are stacked into the four banks first and quantized
    with one scale each, as a file that skipped unbanking would hold them."""
    if banked:
        state = dict(state)
        parts = {
            "qo_bank": ("attn.c_q.weight", "attn.proj.weight"),
            "kv_bank": ("attn.c_k.weight", "attn.c_v.weight"),
            "mlp_up_bank": ("mlp.fc.weight",),
            "mlp_down_bank": ("mlp.proj.weight",),
        }
        for bank, names in parts.items():
            keys = [f"blocks.{i}.{p}" for p in names for i in range(n_layers)]
            state[bank] = torch.stack([state.pop(k) for k in keys])
    w: dict[str, Tensor] = {}
    m: dict[str, object] = {}
    for name, t in state.items():
        if t.numel() <= 64 or t.ndim < 2 or "resid_mix" in name:
            w[name] = t.half()
            m[name] = "passthrough_ctrl" if "scale" in name else "passthrough"
            continue
        clip = 31 if (".attn." in name or ".mlp." in name or "bank" in name) else 127
        if t.ndim == 2:
            s = (t.abs().amax(dim=1) / clip).clamp_min(1 / clip).half()
            q = torch.clamp(torch.round(t / s.float()[:, None]), -clip, clip).to(torch.int8)
        else:
            s = torch.tensor(float(t.abs().max()) / clip).half()
            q = torch.clamp(torch.round(t / s.float()), -clip, clip).to(torch.int8)
        w[name + ".q"], w[name + ".scale"] = q, s
        m[name] = {"type": "int6" if clip == 31 else "int8"}
    return {"w": w, "m": m}


def _reference_dequantize(obj: dict) -> dict[str, Tensor]:
    out = {}
    for name, info in obj["m"].items():
        if isinstance(info, str):
            out[name] = obj["w"][name].float()
            continue
        q, s = obj["w"][name + ".q"], obj["w"][name + ".scale"]
        if s.ndim > 0:
            out[name] = q.float() * s.float().view(q.shape[0], *([1] * (q.ndim - 1)))
        else:
            out[name] = q.float() * float(s.item())
    return out


def _ptz(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return lzma.compress(buf.getvalue(), preset=1)


def _import(tmp_path: Path, obj: object, hparams: dict = HPARAMS, **kw: Any):
    ptz, tok = tmp_path / "final_model.int6.ptz", tmp_path / "tokenizer.model"
    ptz.write_bytes(obj if isinstance(obj, bytes) else _ptz(obj))
    tok.write_bytes(b"a sentencepiece model")
    return import_reference(ptz, hparams, tok, tmp_path / "out.golf", **kw)


VARIANTS = {
    "seed-like": {},
    "alpha-gated-untied": {
        "value_residual": "alpha",
        "skip_gates": True,
        "attn_gate": True,
        "dtg": True,
        "tie_embeddings": False,
        "bigram_vocab_size": 0,
        "bigram_dim": 128,  # a disabled feature's size is the default: no tensor tells
        "ve_enabled": False,
        "ve_dim": 128,
        "smear": False,
    },
    "recurrent": {"recur_layers": (1, 2)},
}


@pytest.mark.parametrize("banked", [False, True], ids=["unbanked", "banked"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_import_keeps_dequantized_weights_identical(
    tmp_path: Path, variant: str, banked: bool
) -> None:
    changes = VARIANTS[variant]
    config = _config(**changes)
    obj = _reference_quantize(_weights(config), banked, config.num_layers)
    hparams = HPARAMS | (
        {"recur_layers": ",".join(map(str, changes["recur_layers"]))}
        if "recur_layers" in changes
        else {}
    )
    art = _import(tmp_path, obj, hparams, code_bytes=321)
    assert art.config == config
    expected = _reference_dequantize(obj)
    if banked:
        for bank, parts in (("qo_bank", ("c_q", "proj")), ("kv_bank", ("c_k", "c_v"))):
            full = expected.pop(bank)
            for k, part in enumerate(parts):
                for i in range(config.num_layers):
                    expected[f"blocks.{i}.attn.{part}.weight"] = full[k * config.num_layers + i]
        for bank, part in (("mlp_up_bank", "fc"), ("mlp_down_bank", "proj")):
            for i, t in enumerate(expected.pop(bank)):
                expected[f"blocks.{i}.mlp.{part}.weight"] = t
    got = art.dequantize()
    assert set(got) == set(expected)
    for name, t in expected.items():
        assert torch.equal(got[name], t), name
    assert set(art.schemes.values()) == {Scheme.INT6, Scheme.FP16} | (
        {Scheme.INT8} if "tok_emb.weight.q" in obj["w"] else set()
    )
    assert art.metadata.code_bytes == 321
    assert art.metadata.provenance.seeds == (42,)
    assert art.metadata.provenance.notes["imported_from"] == "final_model.int6.ptz"
    load_model(art)


def test_int6_entry_beyond_31_is_kept_as_int8(tmp_path: Path) -> None:
    config = _config()
    obj = _reference_quantize(_weights(config), False, config.num_layers)
    obj["w"]["blocks.0.attn.c_q.weight.q"][0, 0] = -32  # late QAT clamps at -32
    art = _import(tmp_path, obj)
    assert art.schemes["blocks.0.attn.c_q.weight"] is Scheme.INT8
    assert torch.equal(
        art.dequantize()["blocks.0.attn.c_q.weight"],
        _reference_dequantize(obj)["blocks.0.attn.c_q.weight"],
    )


def _obj() -> dict:
    config = _config()
    return _reference_quantize(_weights(config), False, config.num_layers)


def _renamed(obj: dict, old: str, new: str) -> dict:
    obj["m"][new] = obj["m"].pop(old)
    obj["w"][new] = obj["w"].pop(old)
    return obj


def _drop(obj: dict, name: str) -> dict:
    del obj["m"][name], obj["w"][name]
    return obj


def _reshape_scale(obj: dict) -> dict:
    obj["w"]["blocks.0.attn.c_q.weight.scale"] = obj["w"]["blocks.0.attn.c_q.weight.scale"][:-1]
    return obj


def _set_m(obj: dict, name: str, info: object) -> dict:
    obj["m"][name] = info
    return obj


def _fp32_passthrough(obj: dict) -> dict:
    obj["w"]["smear.gate"] = torch.full((64,), 0.1)
    return obj


def _no_tok_emb(obj: dict) -> dict:
    del obj["m"]["tok_emb.weight"], obj["w"]["tok_emb.weight.q"], obj["w"]["tok_emb.weight.scale"]
    return obj


BROKEN = {
    "unknown-name": (lambda o: _renamed(o, "smear.gate", "smear.gate2"), UnexpectedTensor),
    "w-without-m": (lambda o: o["w"].update(stray=torch.zeros(2)) or o, UnexpectedTensor),
    "m-without-w": (lambda o: o["m"].update(ghost="passthrough") or o, MissingTensor),
    "missing-block-tensor": (lambda o: _drop(o, "blocks.1.attn.q_gain"), MissingTensor),
    "no-tok-emb": (_no_tok_emb, MissingTensor),
    "scale-shape": (_reshape_scale, ShapeMismatch),
    "unknown-quant-type": (lambda o: _set_m(o, "smear.gate", {"type": "nf4"}), BadMetadata),
    "fp32-passthrough-not-fp16": (_fp32_passthrough, DtypeMismatch),
    "not-a-dict": (lambda o: [1, 2, 3], NotAnArtifact),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_import_rejects_what_fits_no_variant(tmp_path: Path, case: str) -> None:
    edit, error = BROKEN[case]
    with pytest.raises(error) as info:
        _import(tmp_path, edit(_obj()))
    assert "\n" not in str(info.value)


def test_recurrence_needs_hparams(tmp_path: Path) -> None:
    config = _config(recur_layers=(1, 2))
    obj = _reference_quantize(_weights(config), False, config.num_layers)
    with pytest.raises(ConfigInvalid, match="recur_layers"):
        _import(tmp_path, obj)


@pytest.mark.parametrize(
    ("left_out", "named"),
    [
        (("logit_softcap", "rope_base"), "logit_softcap, rope_base"),
        (("ve_layers",), "ve_layers"),
        (tuple(k for k in HPARAMS if k != "seed"), "logit_softcap, rope_base, rope_dims, "
         "rope_train_seq_len, ln_scale, xsa_last_n, ve_layers"),
    ],
)  # fmt: skip
def test_a_missing_hparam_the_scores_depend_on_is_named(
    tmp_path: Path, left_out: tuple[str, ...], named: str
) -> None:
    """No silent default: `{"seed": 1}` names every key the tensors cannot tell, not a
    later symptom (ve_layers [9, 10] out of range)."""
    config = _config(ve_enabled=True, ve_layers=(2, 3))
    obj = _reference_quantize(_weights(config), False, config.num_layers)
    hparams = {k: v for k, v in HPARAMS.items() if k not in left_out}
    with pytest.raises(ConfigInvalid) as info:
        _import(tmp_path, obj, hparams)
    assert str(info.value).startswith(f"--hparams lacks {named}: the tensors cannot tell")


def test_init_only_hparams_are_defaulted_and_said(tmp_path: Path) -> None:
    """qk_gain_init (a q_gain tensor holds the gains) and tied_embed_init_std change no
    score: defaulted, and the provenance says which were."""
    config = _config()
    obj = _reference_quantize(_weights(config), False, config.num_layers)
    hparams = {k: v for k, v in HPARAMS.items() if k != "qk_gain_init"}
    art = _import(tmp_path, obj, hparams)
    notes = art.summary().provenance["notes"]
    assert notes["hparams_defaulted"] == "tied_embed_init_std, qk_gain_init (no effect on scores)"


def test_hostile_pickle_is_never_executed(tmp_path: Path) -> None:
    marker = Path(tempfile.gettempdir()) / f"golf-import-marker-{id(tmp_path)}"
    with pytest.raises(NotAnArtifact, match="weights-only"):
        _import(tmp_path, _ptz({"w": {"x": Trap(marker)}, "m": {}}))
    assert not marker.exists()
    with pytest.raises(NotAnArtifact):
        _import(tmp_path, b"not xz at all")
