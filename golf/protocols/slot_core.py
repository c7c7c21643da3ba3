"""SLOT: per-window throwaway `delta [d]` and `logit_bias [V]`, fitted by AdamW, then scoring.

The head is linear before the softcap: `(h + δ)·Wᵀ + b = h·Wᵀ + (δ·Wᵀ + b)`. The fast
path therefore projects the frozen hidden states once, only at the rows it needs; each
step adds a per-window `[V]` shift, differentiates analytically and applies AdamW in
place. The reference path is the literal algorithm (full logits, autograd,
torch.optim.AdamW), kept to prove the fast one right.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from golf.protocols.adamw import FlatAdamW
from golf.protocols.base import Batch, Protocol, Scorer
from golf.protocols.slot_kernels import load_triton_slot, resolve_slot_kernel
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams

BETAS = (0.9, 0.999)
EPS = 1e-5
WEIGHT_DECAY = 1e-8
# Cost of one SLOT step as a share of a forward pass, for pricing jobs.
STEP_SHARE = 0.005
REFERENCE_STEP_SHARE = 0.05

SlotFn = Callable[[Tensor, Tensor, float, Tensor, Tensor, Tensor, EvalParams], Tensor]
"""fast_slot's signature (golf.protocols.slot_triton.triton_slot has the same)."""


class SlotProtocol(Protocol):
    """SLOT over the window plan; subclasses choose which positions the fit sees."""

    def default_stride(self, seq_len: int) -> int:
        return min(96, seq_len)

    def cost_factor(self, params: EvalParams) -> float:
        """A forward plus each step's share of one (docs/PERFORMANCE.md: SLOT-24 fast is
        1.03× sliding, the reference path 1.70×), with a margin for other devices."""
        return 1.0 + params.slot_steps * (REFERENCE_STEP_SHARE if params.reference else STEP_SHARE)

    @abstractmethod
    def adapt_mask(self, batch: Batch) -> Tensor:
        """[B, T] bool: positions whose NLL the per-window parameters are fitted to."""

    def fit_from(self, batch: Batch) -> np.ndarray | None:
        """Host [B] first position of each window's adapted ∪ scored rows, which run to its
        length; None: every position [0, length). The fast path's forward computes the
        last layer only there."""
        return None

    def nll(self, model: Scorer, batch: Batch, params: EvalParams) -> Tensor:
        """The forward (possibly bf16, see golf.engine.engine) then the fit, always in fp32."""
        if not getattr(model.config, "tanh_head", True):
            raise ConfigError(
                f"{self.name} fits a delta under a bias-free tanh-softcapped head; this "
                "model's head is another (its config says tanh_head=False)"
            )
        adapt, scored = self.adapt_mask(batch), batch.scored
        weight = model.head_weight.detach().float()
        softcap = float(model.config.logit_softcap)
        device_type = batch.inputs.device.type
        if params.reference:
            with torch.no_grad():
                hidden = model.forward_hidden(batch.inputs).float()
            with torch.autocast(device_type, enabled=False):
                return reference_slot(hidden, weight, softcap, batch.targets, adapt, scored, params)
        first = self.fit_from(batch)
        if first is None:
            first = np.zeros(batch.inputs.shape[0], dtype=np.int64)
        rows, dest = batch.row_index(first)
        slot = _slot_kernel(model, params, batch.inputs.device)
        with torch.inference_mode():
            n_windows, width = batch.inputs.shape
            at_rows = model.forward_hidden(batch.inputs, rows).float()
            hidden = at_rows.new_zeros(n_windows, width + 1, at_rows.size(-1))
            hidden.scatter_(1, dest[..., None].expand_as(at_rows), at_rows)
            hidden = hidden[:, :width]
            with torch.autocast(device_type, enabled=False):
                return slot(hidden, weight, softcap, batch.targets, adapt, scored, params)


def _slot_kernel(model: Scorer, params: EvalParams, device: torch.device) -> SlotFn:
    """fast_slot, or the fused Triton step (golf.protocols.slot_triton): the kernel the
    engine resolved when `model` was prepared by it, else `params.slot_kernel` on `device`."""
    kernel = getattr(model, "slot_kernel", None) or resolve_slot_kernel(params.slot_kernel, device)
    return load_triton_slot() if kernel == "triton" else fast_slot


def lr_at(step: int, params: EvalParams) -> float:
    """Cosine decay from slot_lr (step 0) toward slot_lr_min over slot_steps steps."""
    span = params.slot_lr - params.slot_lr_min
    return params.slot_lr_min + 0.5 * span * (1 + math.cos(math.pi * step / params.slot_steps))


def fast_slot(
    hidden: Tensor,
    weight: Tensor,
    softcap: float,
    targets: Tensor,
    adapt: Tensor,
    scored: Tensor,
    params: EvalParams,
) -> Tensor:
    """SLOT with the head projected once; returns [B, T] NLL at `scored`, 0 elsewhere.

    Each window's adapted rows come first, then its scored-only rows, padded to a common
    count P; padding rows carry zero loss weight and are never scored. The steps touch
    only the adapted prefix of P.
    """
    n_windows, _, dim = hidden.shape
    rows, n_adapt, base, row_targets, row_weights = slot_rows(
        hidden, weight, softcap, targets, adapt, scored, params
    )
    theta = hidden.new_zeros(n_windows, dim + weight.shape[0])  # [delta | logit_bias]
    grad = torch.empty_like(theta)
    optimizer = FlatAdamW(theta, BETAS, EPS, WEIGHT_DECAY)
    fitted = base[:, :n_adapt]
    # Reused across steps: a fresh tensor this size costs page faults on every step.
    squashed, scratch = torch.empty_like(fitted), torch.empty_like(fitted)
    for step in range(params.slot_steps):
        grad_bias = _summed_logit_grad(
            _squash(fitted, theta, weight, softcap, out=squashed),
            softcap,
            row_targets[:, :n_adapt],
            row_weights[:, :n_adapt],
            scratch,
        )
        grad[:, dim:] = grad_bias
        torch.mm(grad_bias, weight, out=grad[:, :dim])
        optimizer.step(grad, lr_at(step, params))
    return score_rows(base, theta, weight, softcap, rows, row_targets, scored)


def slot_rows(
    hidden: Tensor,
    weight: Tensor,
    softcap: float,
    targets: Tensor,
    adapt: Tensor,
    scored: Tensor,
    params: EvalParams,
) -> tuple[Tensor, int, Tensor, Tensor, Tensor]:
    """(rows [B, P], adapted count A, base [B, P, V], targets [B, P], loss weights [B, P]):
    the fit's rows, shared by fast_slot and the Triton step so both see the same inputs."""
    dim = hidden.shape[-1]
    # Rank 0: adapted, 1: scored only, 2: unused; a stable sort keeps position order.
    rank = torch.where(adapt, 0, torch.where(scored, 1, 2)).to(torch.int8)
    n_rows = int((adapt | scored).sum(1).max())
    n_adapt = int(adapt.sum(1).max())
    rows = torch.argsort(rank, dim=1, stable=True)[:, :n_rows]
    # Pre-softcap logits over softcap: ((h + δ)·Wᵀ + b) / softcap = base + shift / softcap.
    base = (hidden.gather(1, rows[..., None].expand(-1, -1, dim)) @ weight.T).div_(softcap)
    row_targets = targets.gather(1, rows)
    row_weights = loss_weights(adapt, params.batch_invariant).gather(1, rows)
    return rows, n_adapt, base, row_targets, row_weights


def score_rows(
    base: Tensor,
    theta: Tensor,
    weight: Tensor,
    softcap: float,
    rows: Tensor,
    row_targets: Tensor,
    scored: Tensor,
) -> Tensor:
    """[B, T] NLL at `scored` under the fitted θ = [δ | b], 0 elsewhere."""
    logits = _squash(base, theta, weight, softcap).mul_(softcap)
    nll = F.cross_entropy(logits.flatten(0, 1), row_targets.flatten(), reduction="none")
    nll = nll.view(rows.shape) * scored.gather(1, rows)
    return base.new_zeros(scored.shape).scatter_(1, rows, nll)


def reference_slot(
    hidden: Tensor,
    weight: Tensor,
    softcap: float,
    targets: Tensor,
    adapt: Tensor,
    scored: Tensor,
    params: EvalParams,
) -> Tensor:
    """The literal SLOT algorithm: full logits each step, autograd, torch.optim.AdamW."""
    n_windows, seq, dim = hidden.shape
    vocab = weight.shape[0]
    delta = hidden.new_zeros(n_windows, 1, dim, requires_grad=True)
    logit_bias = hidden.new_zeros(n_windows, 1, vocab, requires_grad=True)
    optimizer = torch.optim.AdamW(
        [delta, logit_bias], lr=params.slot_lr, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY
    )
    mask = adapt.float()

    def position_nll() -> Tensor:
        logits = softcap * torch.tanh((F.linear(hidden + delta, weight) + logit_bias) / softcap)
        nll = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), reduction="none")
        return nll.view(n_windows, seq)

    with torch.enable_grad():
        for step in range(params.slot_steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, params)
            optimizer.zero_grad()
            masked = position_nll() * mask
            if params.batch_invariant:
                loss = (masked.sum(1) / mask.sum(1).clamp_min(1)).sum()
            else:
                loss = masked.sum() / mask.sum().clamp_min(1)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return position_nll() * scored


def loss_weights(adapt: Tensor, batch_invariant: bool) -> Tensor:
    """Per-position loss weights: the mask over its batch count, or over its window's count."""
    mask = adapt.float()
    count = mask.sum(1, keepdim=True) if batch_invariant else mask.sum()
    return mask / count.clamp_min(1)


def _squash(
    base: Tensor, theta: Tensor, weight: Tensor, softcap: float, out: Tensor | None = None
) -> Tensor:
    """tanh(base + (δ·Wᵀ + b) / softcap) = logits / softcap, [B, P, V], from θ = [δ | b]."""
    dim = weight.shape[1]
    shift = torch.addmm(theta[:, dim:], theta[:, :dim], weight.T)
    return torch.add(base, shift[:, None, :], alpha=1 / softcap, out=out).tanh_()


def _summed_logit_grad(
    squashed: Tensor, softcap: float, targets: Tensor, weights: Tensor, scratch: Tensor
) -> Tensor:
    """[B, V] = Σ_rows weight · ∂nll/∂z, given `squashed` = tanh(z / softcap) [B, P, V].

    ∂nll/∂logits = softmax − onehot(target) and ∂logits/∂z = 1 − squashed². The softmax
    normaliser is folded into the row weights. Overwrites `squashed` and `scratch`.
    """
    exp = torch.mul(squashed, softcap, out=scratch)
    exp.sub_(exp.amax(-1, keepdim=True)).exp_()
    total = exp.sum(-1, keepdim=True)
    exp.scatter_add_(-1, targets[..., None], total.neg())  # e − Z·onehot = Z·(softmax − onehot)
    exp.addcmul_(exp, squashed.square_(), value=-1)  # × (1 − tanh²)
    return torch.bmm((weights[..., None] / total).transpose(1, 2), exp).squeeze(1)
