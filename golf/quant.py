"""Quantization schemes of the `.golf` format and the rule that picks one per tensor.

Three schemes, all dequantized the same way the reference does (`q.float() * scale`):
int6 per-row (values −31..31 in int8, fp16 scale per row) for attention/MLP matrices,
int8 per-row (−127..127) for embeddings and other big matrices, fp16 passthrough for
small and control tensors. Quantizing here is round-to-nearest; GPTQ computes its own
integers and scales and builds `QTensor`s directly, so the format does not care how
the values were chosen.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor


class Scheme(StrEnum):
    INT6 = "int6"
    INT8 = "int8"
    FP16 = "fp16"


# Largest |q| each integer scheme may store.
QMAX: dict[Scheme, int] = {Scheme.INT6: 31, Scheme.INT8: 127}

# The reference keeps every float tensor with at most this many elements in fp16.
PASSTHROUGH_MAX_NUMEL = 65_536

# Name fragments of control tensors (gains, mixes, gates), kept in fp16 whatever their
# size: the union of the reference lineage's CONTROL_TENSOR_NAME_PATTERNS.
CONTROL_PATTERNS = (
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


@dataclass(frozen=True)
class QTensor:
    """One stored tensor: int8 `values` with an fp16 per-row `scale`, or fp16 values alone."""

    scheme: Scheme
    values: Tensor
    scale: Tensor | None = None

    def dequantize(self) -> Tensor:
        """Float32 weights, computed exactly as the reference's dequantizer does."""
        if self.scale is None:
            return self.values.float()
        return self.values.float() * self.scale.float()[:, None]


def category(name: str) -> str:
    """The reference's parameter class: embed, mlp, attn or other."""
    if "tok_emb" in name or "lm_head" in name:
        return "embed"
    if ".mlp." in name:
        return "mlp"
    if ".attn." in name or ".proj." in name:
        return "attn"
    return "other"


def scheme_for(
    name: str, shape: Sequence[int], *, passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL
) -> Scheme:
    """The reference's mixed int6 rule: small or control tensors stay fp16, attention and
    MLP matrices go int6, other matrices int8 per row.

    The reference gives big non-matrix tensors a single scale; the model has none, and
    this format only stores per-row scales, so they stay fp16.
    """
    numel = 1
    for dim in shape:
        numel *= dim
    if numel <= passthrough_max_numel or any(p in name for p in CONTROL_PATTERNS):
        return Scheme.FP16
    if len(shape) != 2:
        return Scheme.FP16
    return Scheme.INT6 if category(name) in ("attn", "mlp") else Scheme.INT8


def quantize(tensor: Tensor, scheme: Scheme) -> QTensor:
    """Round-to-nearest with a per-row scale of max|row| / QMAX (rounded to fp16 first, so
    the integers are chosen against the scale that is stored)."""
    t = tensor.detach().float().cpu()
    if scheme is Scheme.FP16:
        return QTensor(scheme, t.to(torch.float16).contiguous())
    if t.ndim != 2:
        raise ValueError(f"{scheme} needs a matrix, got shape {tuple(t.shape)}")
    qmax = QMAX[scheme]
    fp16 = torch.finfo(torch.float16)
    amax = t.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    scale = scale.clamp(fp16.tiny, fp16.max).to(torch.float16)
    q = torch.clamp(torch.round(t / scale.float()[:, None]), -qmax, qmax).to(torch.int8)
    return QTensor(scheme, q.contiguous(), scale.contiguous())


def quantize_state_dict(
    state: Mapping[str, Tensor], *, passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL
) -> dict[str, QTensor]:
    """Every tensor of a float state dict under the scheme `scheme_for` picks."""
    return {
        name: quantize(t, scheme_for(name, t.shape, passthrough_max_numel=passthrough_max_numel))
        for name, t in state.items()
    }


def dequantize_state_dict(tensors: Mapping[str, QTensor]) -> dict[str, Tensor]:
    return {name: qt.dequantize() for name, qt in tensors.items()}
