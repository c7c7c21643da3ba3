"""Muon: momentum SGD whose update is orthogonalised by a Newton–Schulz iteration.

The matrices of the blocks train with it; embeddings and control tensors use AdamW.
The update of an [m, n] matrix is the nearest semi-orthogonal matrix to the Nesterov
momentum (all singular values ≈ 1), scaled by sqrt(max(1, m/n)) so tall matrices get
the same per-element RMS as square ones; weight decay is decoupled (p *= 1 - lr·wd).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from trainer.dist import Dist

# Quintic coefficients of the reference: they push singular values into roughly
# [0.7, 1.2] in five steps instead of converging exactly, which is all Muon needs.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Approximately orthogonalise a matrix: U·Vᵀ of its SVD, singular values ≈ 1.

    bf16 on CUDA as the reference; float32 on CPU, where bf16 matmuls are slow.
    """
    a, b, c = NS_COEFFS
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    x = x / (x.norm() + eps)
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide side: X·Xᵀ is the smaller Gram matrix
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Nesterov momentum → Newton–Schulz → shape scale, with decoupled weight decay.

    With a distributed `dist`, rank r orthogonalises matrices r, r+W, …, and one
    all-reduce (a sum of exact zeros elsewhere) gives every rank every update, so the
    step is bit-identical to the single-process one.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float,
        backend_steps: int = 5,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        dist: Dist | None = None,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            backend_steps=backend_steps,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)
        self.dist = dist

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        rank, world = (self.dist.rank, self.dist.world_size) if self.dist else (0, 1)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
            updates = torch.zeros(sum(p.numel() for p in params), device=params[0].device)
            offset = 0
            for i, p in enumerate(params):
                if i % world == rank:
                    buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(mom).add_(p.grad)
                    g = p.grad.add(buf, alpha=mom) if group["nesterov"] else buf
                    u = newton_schulz(g, group["backend_steps"])
                    u = u.float() * max(1.0, p.size(0) / p.size(1)) ** 0.5
                    updates[offset : offset + p.numel()] = u.flatten()
                offset += p.numel()
            if world > 1:
                self.dist.all_reduce_sum(updates)
            offset = 0
            for p in params:
                if wd:
                    p.mul_(1.0 - lr * wd)
                p.add_(updates[offset : offset + p.numel()].view_as(p).to(p.dtype), alpha=-lr)
                offset += p.numel()
        return loss
