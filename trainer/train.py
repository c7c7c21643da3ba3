"""Stage 1: train the GPT from scratch on a token stream, the seed record's way.

Muon for the block matrices, AdamW for embeddings and control tensors; LR warm-up,
then a linear warm-down to 0 over the last `warmdown_steps` (counted in iterations,
or in wall-clock time projected from the mean step time when `max_wallclock_s` is
set); gradient clipping; an fp32 EMA of every weight; late int6 QAT once the LR scale
falls below `qat_threshold`; depth recurrence switched on at `recur_start_step`.

The global batch is `batch_tokens` whatever the number of ranks: every step reads the
next `batch_tokens + 1` tokens of the stream as `batch_seqs` sequences, rank r takes
its contiguous share of them in micro-batches, and gradients are summed across ranks
with each loss pre-divided by the global sequence count, so the step is the mean over
the global batch, as one process would compute it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from golf.models.gpt import GPT
from golf.models.roles import Role
from golf.spec.errors import ConfigError, DataError
from trainer.config import TrainConfig
from trainer.dist import Dist
from trainer.muon import Muon
from trainer.qat import disable_qat, enable_qat

Clock = Callable[[], float]


@dataclass
class TrainResult:
    model: GPT  # final raw weights, eval mode
    ema_state: dict[str, Tensor]  # float32 EMA of every state-dict tensor
    steps: int
    elapsed_s: float
    tokens: int
    log: list[dict]


def warmdown_scale(cfg: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """1, then linear to 0 over the last `warmdown_steps` of step `step` (0-based) — of the
    iterations, or, with a wall-clock budget, of the time left at the mean step time so
    far; whichever end comes first."""
    if not cfg.warmdown_steps:
        return 1.0
    scale = min(1.0, max(cfg.iterations - step, 0) / cfg.warmdown_steps)
    if cfg.max_wallclock_s is not None and step > 0:
        warmdown_s = cfg.warmdown_steps * elapsed_s / step
        remaining_s = max(cfg.max_wallclock_s - elapsed_s, 0.0)
        scale = min(scale, remaining_s / warmdown_s)
    return scale


def lr_scale(cfg: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """LR multiplier of step `step`: a linear warm-up over `warmup_steps`, then the
    warm-down schedule."""
    warmup = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    return min(warmup, warmdown_scale(cfg, step, elapsed_s))


def muon_momentum(cfg: TrainConfig, step: int) -> float:
    """Momentum ramps linearly from the warm-up start to its final value."""
    if not cfg.muon_momentum_warmup_steps:
        return cfg.muon_momentum
    frac = min(step / cfg.muon_momentum_warmup_steps, 1.0)
    return (1 - frac) * cfg.muon_momentum_warmup_start + frac * cfg.muon_momentum


def param_groups(model: GPT) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """(Muon matrices, embeddings, scalars), by the role the model declares for each
    parameter: matrices to Muon, token tables (and an untied head) to AdamW at embed_lr,
    control tensors (gains, mixes, gates, scales) to AdamW at scalar_lr."""
    roles = model.parameter_roles()
    groups: dict[Role, list[Tensor]] = {r: [] for r in Role}
    for name, p in model.named_parameters():
        groups[roles[name]].append(p)
    return groups[Role.MATRIX], groups[Role.EMBEDDING], groups[Role.CONTROL]


def build_optimizers(model: GPT, cfg: TrainConfig, dist: Dist) -> list[torch.optim.Optimizer]:
    """Muon + AdamW, every group remembering its `base_lr` for the schedule."""
    matrices, embeddings, scalars = param_groups(model)
    adam = dict(
        betas=cfg.adam_betas,
        eps=cfg.adam_eps,
        weight_decay=cfg.adam_weight_decay,
        fused=dist.device.type == "cuda",
    )
    muon = Muon(
        matrices,
        lr=cfg.matrix_lr,
        momentum=cfg.muon_momentum_warmup_start,
        backend_steps=cfg.muon_backend_steps,
        weight_decay=cfg.muon_weight_decay,
        dist=dist,
    )
    adamw = torch.optim.AdamW(
        [
            {"params": embeddings, "lr": cfg.embed_lr},
            {"params": scalars, "lr": cfg.scalar_lr},
        ],
        **adam,
    )
    optimizers: list[torch.optim.Optimizer] = [muon, adamw]
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def batches(
    tokens: np.ndarray, cfg: TrainConfig, dist: Dist
) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """This rank's micro-batches (x, y) of each global batch, from the start of the stream
    on, wrapping around at its end."""
    seqs, L = cfg.batch_seqs, cfg.seq_len
    if seqs % dist.world_size:
        raise ConfigError(
            f"batch_tokens {cfg.batch_tokens} makes {seqs} sequences of {L}, not divisible "
            f"by {dist.world_size} ranks"
        )
    if tokens.size < cfg.batch_tokens + 1:
        raise DataError(
            f"{tokens.size} train tokens are fewer than one batch of {cfg.batch_tokens} + 1"
        )
    per_rank = seqs // dist.world_size
    micro = cfg.micro_batch_seqs or per_rank
    lo = dist.rank * per_rank * L
    span = per_rank * L + 1
    pos = 0
    while True:
        if pos + cfg.batch_tokens + 1 > tokens.size:
            pos = 0
        chunk = torch.from_numpy(tokens[pos + lo : pos + lo + span].astype(np.int64))
        chunk = chunk.to(dist.device, non_blocking=True)
        x, y = chunk[:-1].view(per_rank, L), chunk[1:].view(per_rank, L)
        yield [(x[i : i + micro], y[i : i + micro]) for i in range(0, per_rank, micro)]
        pos += cfg.batch_tokens


def reduce_grads(params: list[Tensor], dist: Dist) -> None:
    """Sum the gradients of all ranks in one flat all-reduce. Which parameters have a
    gradient depends only on the step, never on the rank, so the layouts agree."""
    grads = [p.grad for p in params if p.grad is not None]
    if not dist.distributed or not grads:
        return
    flat = dist.all_reduce_sum(torch.cat([g.flatten() for g in grads]))
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def autocast(device: torch.device):
    """bf16 autocast on CUDA as the reference; plain fp32 on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def train(
    cfg: TrainConfig,
    train_tokens: np.ndarray,
    dist: Dist,
    *,
    on_log: Callable[[dict], None] | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    clock: Clock = time.perf_counter,
) -> TrainResult:
    """Train a fresh GPT(cfg.model) seeded by cfg.seed; same inputs, same bits.

    `on_log` gets every logged record and `progress` every step's, on the main rank only.
    `clock` is the wall clock of the budget (tests inject one).
    """
    torch.manual_seed(cfg.seed)
    model = GPT(cfg.model).to(dist.device).train()
    params = list(model.parameters())
    optimizers = build_optimizers(model, cfg, dist)
    muon = optimizers[0]
    ema = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    ema_keys = list(ema)
    recur_step = cfg.recur_start_step or 0  # the config allows it only with recur_layers
    model.recur_active = recur_step == 0
    qat = False
    stream = batches(train_tokens, cfg, dist)
    log: list[dict] = []
    main = dist.is_main
    wallclock = cfg.max_wallclock_s

    start = clock()
    elapsed = 0.0
    step = 0
    while step < cfg.iterations and (wallclock is None or elapsed < wallclock):
        scale = lr_scale(cfg, step, elapsed)
        # Late QAT keys on the warm-down alone: a low warm-up LR is not the end of training.
        if not qat and warmdown_scale(cfg, step, elapsed) < cfg.qat_threshold:
            enable_qat(model, cfg.passthrough_max_numel)
            qat = True
        if not model.recur_active and step >= recur_step:
            model.recur_active = True

        loss_sum = torch.zeros((), device=dist.device)
        for x, y in next(stream):
            with autocast(dist.device):
                loss = model(x, y)
            (loss * (x.size(0) / cfg.batch_seqs)).backward()
            loss_sum += loss.detach() * x.size(0)
        reduce_grads(params, dist)
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        for group in muon.param_groups:
            group["momentum"] = muon_momentum(cfg, step)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
            opt.step()
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            state = model.state_dict()
            ema_values = [ema[k] for k in ema_keys]
            torch._foreach_mul_(ema_values, cfg.ema_decay)
            weights = [state[k].detach().float() for k in ema_keys]
            torch._foreach_add_(ema_values, weights, alpha=1 - cfg.ema_decay)
        step += 1

        elapsed = clock() - start
        if dist.distributed and wallclock is not None:  # one clock for all ranks
            t = torch.tensor(elapsed, dtype=torch.float64, device=dist.device)
            elapsed = dist.all_reduce_mean(t).item()
        last = step >= cfg.iterations or (wallclock is not None and elapsed >= wallclock)
        record = {
            "stage": "train",
            "step": step,
            "loss": loss_sum.item() / (cfg.batch_seqs // dist.world_size),
            "lr_scale": scale,
            "tok_s": step * cfg.batch_tokens / max(elapsed, 1e-9),
            "elapsed_s": elapsed,
            "qat": qat,
            "recur": model.recur_active and bool(cfg.model.recur_layers),
        }
        if step % cfg.log_every == 0 or last:
            if dist.distributed:  # the logged loss is the global batch's
                mean = dist.all_reduce_mean(torch.tensor(record["loss"], device=dist.device))
                record["loss"] = mean.item()
            log.append(record)
            if on_log is not None and main:
                on_log(record)
        if progress is not None and main:
            progress(step, cfg.iterations, record)

    disable_qat(model)
    model.recur_active = True  # the artifact runs its config's full schedule
    model.eval()
    ema_state = {k: v.cpu() for k, v in ema.items()}
    return TrainResult(model, ema_state, step, elapsed, step * cfg.batch_tokens, log)
