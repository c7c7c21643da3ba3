"""Stage 2: pre-quant AdamW test-time training of the EMA weights, before GPTQ.

A few epochs of AdamW over a fixed token set (train tokens by default; val only when
asked, which the review of the seed record contests), with the first blocks frozen and
a per-epoch cosine LR from `ttt_lr` towards a tenth of it, as the reference ports of
PR #1423 do. The adaptation is baked into the weights the artifact stores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from golf.models.gpt import GPT
from golf.spec.errors import DataError
from trainer.config import TrainConfig
from trainer.dist import Dist
from trainer.train import autocast, reduce_grads

GRAD_CLIP = 1.0  # the reference's PREQUANT_TTT_GRAD_CLIP
LR_MIN_FRACTION = 0.1  # cosine floor, as the reference's eta_min = lr / 10


@dataclass
class TTTResult:
    loss_before: float
    loss_after: float
    epochs: int
    tokens: int
    log: list[dict]


def sequences(tokens: np.ndarray, cfg: TrainConfig) -> Tensor:
    """[S, seq_len + 1] rows over the first `ttt_tokens` tokens (inputs and targets)."""
    L = cfg.seq_len
    n = min(cfg.ttt_tokens, tokens.size - 1) // L
    if n < 1:
        raise DataError(
            f"TTT needs at least {L + 1} tokens, got {min(cfg.ttt_tokens, tokens.size)}"
        )
    flat = torch.from_numpy(np.asarray(tokens[: n * L + 1]).astype(np.int64))
    return flat.unfold(0, L + 1, L)


def rank_slices(n: int, batch: int, dist: Dist) -> list[tuple[slice, int]]:
    """Per global batch of `batch` rows: this rank's contiguous share and the batch size."""
    out = []
    for lo in range(0, n, batch):
        size = min(batch, n - lo)
        a, b = (
            lo + size * dist.rank // dist.world_size,
            lo + size * (dist.rank + 1) // dist.world_size,
        )
        out.append((slice(a, b), size))
    return out


@torch.no_grad()
def mean_loss(model: GPT, rows: Tensor, cfg: TrainConfig, dist: Dist) -> float:
    """Mean next-token loss over every row, the ranks sharing the work."""
    was_training = model.training
    model.eval()
    nll_sum = torch.zeros((), dtype=torch.float64, device=dist.device)
    for sl, _ in rank_slices(rows.size(0), cfg.ttt_batch_seqs, dist):
        batch = rows[sl].to(dist.device)
        if batch.numel():
            with autocast(dist.device):
                loss = model(batch[:, :-1], batch[:, 1:])
            nll_sum += loss.double() * batch[:, 1:].numel()
    model.train(was_training)
    return dist.all_reduce_sum(nll_sum).item() / (rows.size(0) * cfg.seq_len)


def ttt(
    model: GPT,
    tokens: np.ndarray,
    cfg: TrainConfig,
    dist: Dist,
    *,
    on_log: Callable[[dict], None] | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    step_progress: Callable[[int, int], None] | None = None,
) -> TTTResult:
    """Adapt `model` in place; losses are measured on the adapted tokens themselves.

    `on_log` and `progress(epoch, epochs, record)` run after each epoch, on the main rank
    only; `step_progress(steps done, steps in all)` after each optimizer step (a single
    epoch of many batches shows life too). With 0 epochs the weights are untouched.
    """
    rows = sequences(tokens, cfg)
    n_tokens = rows.size(0) * cfg.seq_len
    loss_before = mean_loss(model, rows, cfg, dist)
    log: list[dict] = []
    if cfg.ttt_epochs == 0:
        return TTTResult(loss_before, loss_before, 0, n_tokens, log)

    frozen = {id(p) for block in model.blocks[: cfg.ttt_freeze_blocks] for p in block.parameters()}
    requires_grad = {p: p.requires_grad for p in model.parameters()}
    params = [p for p in model.parameters() if id(p) not in frozen]
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    opt = torch.optim.AdamW(params, lr=cfg.ttt_lr, weight_decay=0.0)
    slices = rank_slices(rows.size(0), cfg.ttt_batch_seqs, dist)
    lr_min = cfg.ttt_lr * LR_MIN_FRACTION
    model.train()
    start = time.perf_counter()
    total_steps, step = cfg.ttt_epochs * len(slices), 0
    for epoch in range(cfg.ttt_epochs):
        lr = lr_min + 0.5 * (cfg.ttt_lr - lr_min) * (1 + math.cos(math.pi * epoch / cfg.ttt_epochs))
        for group in opt.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), dtype=torch.float64, device=dist.device)
        for sl, size in slices:
            batch = rows[sl].to(dist.device)
            loss = torch.zeros((), device=dist.device)
            if batch.numel():
                with autocast(dist.device):
                    loss = model(batch[:, :-1], batch[:, 1:])
                (loss * (batch.size(0) / size)).backward()
            else:  # a short last batch left this rank nothing: send zeros
                for p in params:
                    p.grad = torch.zeros_like(p)
            reduce_grads(params, dist)
            nn.utils.clip_grad_norm_(params, GRAD_CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss.detach().double() * batch.size(0)
            step += 1
            if step_progress is not None and dist.is_main:
                step_progress(step, total_steps)
        epoch_loss = dist.all_reduce_sum(loss_sum)
        record = {
            "stage": "ttt",
            "epoch": epoch + 1,
            "loss": epoch_loss.item() / rows.size(0),
            "lr": lr,
            "elapsed_s": time.perf_counter() - start,
        }
        log.append(record)
        if on_log is not None and dist.is_main:
            on_log(record)
        if progress is not None and dist.is_main:
            progress(epoch + 1, cfg.ttt_epochs, record)
    for p, flag in requires_grad.items():
        p.requires_grad_(flag)
    model.eval()
    loss_after = mean_loss(model, rows, cfg, dist)
    return TTTResult(loss_before, loss_after, cfg.ttt_epochs, n_tokens, log)
