"""Protocols that adapt as they read: the whole val stream in one left-to-right pass.

Score-first test-time training scores a piece of the stream, then trains on it, so a
unit's score depends on every unit before it: the batch-by-batch contract of `Protocol`
(a batch depends only on its windows) does not hold. A `StreamProtocol` instead scores
the stream in order and hands back, per unit (a window, a document), the targets it
scored and their NLLs; `golf.engine.evaluate` turns those into the same per-window
records as every other protocol, and the causality audit compares them target by target.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf.models.attention import segment_ids
from golf.protocols.base import Batch, Protocol, Scorer, Trainable
from golf.protocols.scored import Scored
from golf.spec.documents import BOS_ID
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import StreamOutline

if TYPE_CHECKING:
    from golf.protocols.collective import Group


ScoredProgress = Callable[[int, list[Scored]], None]
"""Called after each step of the chain (chunk, document batch) with its index and units."""


class StreamProtocol(Protocol):
    """A protocol scored in one pass over the stream; `score` replaces `nll`."""

    sequential: ClassVar[bool] = True
    unit_name: ClassVar[str] = "window"  # what one record scores
    step_name: ClassVar[str] = "chunk"  # what one step of the chain (a progress call) is

    def nll(self, model: Scorer, batch: Batch, params: EvalParams) -> Tensor:
        raise ConfigError(
            f"protocol {self.name!r} adapts along the stream; evaluate it whole, not by batch"
        )

    @abstractmethod
    def score(
        self,
        model: Scorer,
        tokens: Tensor,
        params: EvalParams,
        progress: ScoredProgress | None = None,
    ) -> list[Scored]:
        """Every unit's scores over the N + 1 `tokens`, in the order they were scored."""

    def steps(self, n_tokens: int, tokens: np.ndarray | None, params: EvalParams) -> int:
        """How many chain steps (progress calls) a run has: what a progress bar counts."""
        return 1

    def shardable(self, params: EvalParams) -> bool:
        """True when each step depends on nothing before it, so any subset of the steps
        (`score(..., only=...)`) can run anywhere and the union is the whole run."""
        return False

    def chainable(self, params: EvalParams) -> bool:
        """True when the run is one chain whose result depends on no scheduling: the same
        steps in the same order, any number of data-parallel workers (`ttt`, canonical
        `ttt-phased`), so the service can run it on a gang."""
        return False

    def phases(
        self, step_sizes: tuple[int, ...], params: EvalParams, steps_done: int
    ) -> tuple[int, int] | None:
        """(phases done, phases) once `steps_done` steps ran, for a chain with phases
        between its steps (`ttt-phased`); None for one without."""
        return None

    def outline(self, tokens: np.ndarray, params: EvalParams) -> StreamOutline:
        """The steps `score` will take over these N + 1 val tokens (resolved params)."""
        raise ConfigError(f"protocol {self.name!r} has no outline")


def trainable_copy(model: Scorer) -> Trainable:
    """A private, trainable copy of a prepared model (`golf.engine.prepare`): TTT changes
    weights and the caller's model is never touched."""
    copier = getattr(model, "trainable_copy", None)
    if copier is None:
        raise ConfigError("test-time training runs on a prepared model (golf.engine.prepare)")
    return copier()


def module_of(model: Trainable) -> nn.Module:
    """The torch module a trainable copy runs."""
    module = model.model
    assert isinstance(module, nn.Module)
    return module


@contextmanager
def training(module: nn.Module, params: list[nn.Parameter]) -> Iterator[None]:
    """Gradients on `params` only, for the duration of a training step."""
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None


def sequence_loss(
    model: Trainable,
    x: Tensor,
    y: Tensor,
    doc_bounded: bool,
    max_len: int = 0,
    reduction: str = "mean",
) -> Tensor:
    """Mean (or summed) cross entropy of next-token targets y over rows x (per-document
    attention when `doc_bounded`, segments cut every `max_len` tokens inside a document)."""
    segments = segment_ids(x, BOS_ID, max_len) if doc_bounded else None
    hidden = model.forward_hidden(x, segments=segments)
    logits = model.logits(hidden)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction=reduction)


def cosine_lr(peak: float, step: int, steps: int) -> float:
    """peak·½(1 + cos(π·step / max(steps − 1, 1))): the records' per-chunk schedule."""
    return peak * 0.5 * (1.0 + math.cos(math.pi * step / max(steps - 1, 1)))


def sgd_chunks(
    model: Trainable,
    train_params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    tokens: Tensor,
    start: int,
    end: int,
    *,
    seq_len: int,
    batch_seqs: int,
    epochs: int,
    clip: float,
    lr: float,
    packed: bool = False,
    doc_bounded: bool = False,
    group: Group | None = None,
) -> int:
    """Train on targets [start, end) of `tokens` as full L-token sequences; return steps.

    Each step is the mean cross entropy over up to `batch_seqs` sequences (one row of
    document-bounded attention when `packed`, as the records' global SGD; rows masked per
    document when `doc_bounded`), clipped to
    `clip`, one optimizer step at `lr`. Sequences that do not fit whole are left out.

    With a `group` of several ranks, each rank takes a contiguous share of the step's
    rows, its loss the sum of cross entropy over its tokens divided by the step's token
    count, and the gradients are summed in rank order (`Group.sum_grads`): every rank
    takes the same step, equal to world 1's up to the rounding of the split sum. A packed
    row cannot be cut without changing its attention segments and positions, so packed
    steps run whole on every rank (the same bits everywhere, no communication).
    """
    if group is not None and group.world > 1 and not packed:
        return _sgd_split(
            model, train_params, optimizer, tokens, start, end, group,
            seq_len=seq_len, batch_seqs=batch_seqs, epochs=epochs, clip=clip, lr=lr,
            doc_bounded=doc_bounded,
        )  # fmt: skip
    n_seqs = (end - start) // seq_len
    steps = 0
    for group in optimizer.param_groups:
        group["lr"] = lr
    module = module_of(model)
    module.train()
    with training(module, train_params):
        for _ in range(epochs):
            for first in range(0, n_seqs, batch_seqs):
                last = min(first + batch_seqs, n_seqs)
                lo, hi = start + first * seq_len, start + last * seq_len + 1
                if hi > tokens.numel():
                    continue
                local = tokens[lo:hi]
                optimizer.zero_grad(set_to_none=True)
                if packed:
                    x, y = local[:-1][None], local[1:][None]
                    loss = sequence_loss(model, x, y, True, seq_len)
                else:
                    x, y = local[:-1].view(-1, seq_len), local[1:].view(-1, seq_len)
                    loss = sequence_loss(model, x, y, doc_bounded)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(train_params, clip)
                optimizer.step()
                steps += 1
    module.eval()
    return steps


def _sgd_split(
    model: Trainable,
    train_params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    tokens: Tensor,
    start: int,
    end: int,
    group: Group,
    *,
    seq_len: int,
    batch_seqs: int,
    epochs: int,
    clip: float,
    lr: float,
    doc_bounded: bool,
) -> int:
    """`sgd_chunks` with each step's rows shared among the group's ranks."""
    n_seqs = (end - start) // seq_len
    steps = 0
    for g in optimizer.param_groups:
        g["lr"] = lr
    module = module_of(model)
    module.train()
    with training(module, train_params):
        for _ in range(epochs):
            for first in range(0, n_seqs, batch_seqs):
                last = min(first + batch_seqs, n_seqs)
                if start + last * seq_len + 1 > tokens.numel():
                    continue
                rows = last - first
                mine_lo = first + rows * group.rank // group.world
                mine_hi = first + rows * (group.rank + 1) // group.world
                optimizer.zero_grad(set_to_none=True)
                if mine_hi > mine_lo:
                    local = tokens[start + mine_lo * seq_len : start + mine_hi * seq_len + 1]
                    x, y = local[:-1].view(-1, seq_len), local[1:].view(-1, seq_len)
                    loss = sequence_loss(model, x, y, doc_bounded, reduction="sum")
                    (loss / (rows * seq_len)).backward()
                group.sum_grads(train_params)
                torch.nn.utils.clip_grad_norm_(train_params, clip)
                optimizer.step()
                steps += 1
    module.eval()
    return steps
