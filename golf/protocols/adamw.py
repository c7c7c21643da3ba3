"""AdamW on one flat tensor, op for op as `torch.optim.AdamW` (single-tensor path).

The fast SLOT path computes gradients analytically, outside autograd; this keeps the
optimizer's arithmetic identical to the reference path without `.grad` bookkeeping.
"""

from __future__ import annotations

import torch
from torch import Tensor


class FlatAdamW:
    """Decoupled weight decay, bias-corrected moments; `step(grad, lr)` updates `param` in place."""

    def __init__(
        self,
        param: Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        self.param = param
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.steps = 0

    def step(self, grad: Tensor, lr: float) -> None:
        self.steps += 1
        if self.weight_decay != 0:
            self.param.mul_(1 - lr * self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        step_size = lr / (1 - self.beta1**self.steps)
        bias_correction2_sqrt = (1 - self.beta2**self.steps) ** 0.5
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-step_size)
