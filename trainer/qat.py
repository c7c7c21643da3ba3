"""Late QAT: train the int6 matrices through the rounding they will get in the artifact.

Once the warm-down LR scale falls below `qat_threshold`, each int6 matrix's forward uses
its round-to-nearest int6 weights (golf.formats.quant's rule: per-row scale `row_scale`, max|row|/31
stored in fp16), while the gradient flows to the float weights as if there were no rounding
(straight-through). The weights stay float; only the forward sees the grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.formats.quant import PASSTHROUGH_MAX_NUMEL, QMAX, Scheme, row_scale, scheme_for
from golf.models.gpt import GPT, CastedLinear


def fake_quant_int6(w: Tensor) -> Tensor:
    """`w` rounded to the int6 grid in the forward, identity in the backward.

    The values equal `golf.formats.quant.quantize(w, INT6).dequantize()`, computed on w's device.
    """
    qmax = QMAX[Scheme.INT6]
    with torch.no_grad():
        w32 = w.float()
        scale = row_scale(w32, qmax).float()[:, None]
        q = torch.clamp(torch.round(w32 / scale), -qmax, qmax) * scale
    return w + (q.to(w.dtype) - w).detach()


class QATLinear(CastedLinear):
    """A CastedLinear whose training forward sees its int6-rounded weight."""

    def forward(self, x: Tensor) -> Tensor:
        w = fake_quant_int6(self.weight) if self.training else self.weight
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, w.to(x.dtype), bias)


def int6_linears(
    model: GPT, passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL
) -> dict[str, CastedLinear]:
    """The linears whose weights the artifact stores in int6 (golf.formats.quant's rule on the
    roles the model declares)."""
    roles = model.parameter_roles()
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, CastedLinear)
        and scheme_for(
            roles[f"{name}.weight"], m.weight.shape, passthrough_max_numel=passthrough_max_numel
        )
        is Scheme.INT6
    }


def enable_qat(model: GPT, passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL) -> list[str]:
    """Fake-quantize the int6 linears from now on; returns their names.

    Swapping the class keeps parameter names, state dict and optimizer state intact.
    """
    linears = int6_linears(model, passthrough_max_numel)
    for m in linears.values():
        m.__class__ = QATLinear
    return list(linears)


def disable_qat(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, QATLinear):
            m.__class__ = CastedLinear
