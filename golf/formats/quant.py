"""Quantization schemes of the `.golf` format and the rule that picks one per tensor.

Three schemes, all dequantized the same way the reference does (`q.float() * scale`):
int6 per-row (values −31..31 in int8, fp16 scale per row) for attention/MLP matrices,
int8 per-row (−127..127) for embeddings, fp16 passthrough for small and control
tensors. Which one a tensor gets follows from the Role its model declares for it
(golf.models.roles), never from its name. Quantizing here is round-to-nearest; GPTQ computes
its own integers and builds `QTensor`s directly, so the format does not care how the
values were chosen.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from golf.models.roles import MissingRole, Role


class Scheme(StrEnum):
    INT6 = "int6"
    INT8 = "int8"
    FP16 = "fp16"
    FP32 = "fp32"  # imported records' float32 passthrough (and exact dequantized fallbacks)


# Largest |q| each integer scheme may store.
QMAX: dict[Scheme, int] = {Scheme.INT6: 31, Scheme.INT8: 127}

# The reference keeps every float tensor with at most this many elements in fp16.
PASSTHROUGH_MAX_NUMEL = 65_536


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


def scheme_for(
    role: Role, shape: Sequence[int], *, passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL
) -> Scheme:
    """The reference's mixed int6 rule, keyed by the role the model declares: control
    tensors and small ones stay fp16, matrices (attention, MLP, projections) go int6,
    embeddings int8 per row.

    The reference gives big non-matrix tensors a single scale; the model has none, and
    this format only stores per-row scales, so they stay fp16.
    """
    role = Role(role)
    if role is Role.CONTROL or math.prod(shape) <= passthrough_max_numel or len(shape) != 2:
        return Scheme.FP16
    return Scheme.INT6 if role is Role.MATRIX else Scheme.INT8


def row_scale(t: Tensor, qmax: int) -> Tensor:
    """The fp16 per-row scale max|row| / qmax of a float32 matrix: 1 for an all-zero row,
    clamped to fp16's positive normal range. Round-to-nearest, QAT and GPTQ share it."""
    fp16 = torch.finfo(torch.float16)
    amax = t.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return scale.clamp(fp16.tiny, fp16.max).to(torch.float16)


def quantize(tensor: Tensor, scheme: Scheme) -> QTensor:
    """Round-to-nearest with a per-row scale of max|row| / QMAX (rounded to fp16 first, so
    the integers are chosen against the scale that is stored)."""
    t = tensor.detach().float().cpu()
    if scheme is Scheme.FP16:
        return QTensor(scheme, t.to(torch.float16).contiguous())
    if t.ndim != 2:
        raise ValueError(f"{scheme} needs a matrix, got shape {tuple(t.shape)}")
    qmax = QMAX[scheme]
    scale = row_scale(t, qmax)
    q = torch.clamp(torch.round(t / scale.float()[:, None]), -qmax, qmax).to(torch.int8)
    return QTensor(scheme, q.contiguous(), scale.contiguous())


def quantize_state_dict(
    state: Mapping[str, Tensor],
    roles: Mapping[str, Role],
    *,
    passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL,
) -> dict[str, QTensor]:
    """Every tensor of a float state dict under the scheme `scheme_for` picks for its role
    (`GPT.parameter_roles()`, or `golf.models.registry.roles_for(config)`)."""
    out: dict[str, QTensor] = {}
    for name, t in state.items():
        if name not in roles:
            raise MissingRole(f"tensor {name} has no declared role")
        scheme = scheme_for(roles[name], t.shape, passthrough_max_numel=passthrough_max_numel)
        out[name] = quantize(t, scheme)
    return out


def dequantize_state_dict(tensors: Mapping[str, QTensor]) -> dict[str, Tensor]:
    return {name: qt.dequantize() for name, qt in tensors.items()}
