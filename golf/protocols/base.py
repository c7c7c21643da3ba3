"""What a protocol is (a window plan plus a per-position NLL for one batch of windows) and
what it may ask of a model (`Scorer`)."""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from golf.params import EvalParams
from golf.plan import WindowPlan, make_plan


class HeadConfig(typing.Protocol):
    """The two numbers of a model's config that scoring needs."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def logit_softcap(self) -> float: ...


@typing.runtime_checkable
class Scorer(typing.Protocol):
    """Everything protocols, the causality audit and the evaluation engine call on a model.

    The head must be `softcap·tanh(hidden·head_weightᵀ / softcap)`: SLOT's fast path
    relies on it being linear before the softcap. `golf.model.GPT` implements this; a
    second model family (registered by architecture in `golf.architectures`) implements
    the same surface and every protocol runs on it unchanged.
    """

    config: HeadConfig

    @property
    def head_weight(self) -> Tensor:
        """[V, d] output projection (tied or not)."""
        ...

    def forward_hidden(self, ids: Tensor) -> Tensor:
        """[B, T] token ids -> [B, T, d] hidden states after the final norm."""
        ...

    def logits(self, hidden: Tensor) -> Tensor:
        """[..., d] hidden -> [..., V] softcapped logits."""
        ...


@dataclass(frozen=True)
class Batch:
    """Windows `windows` of a plan as padded tensors; padding is never scored or adapted on.

    Row i holds inputs `tokens[s : s + n]` and targets `tokens[s + 1 : s + n + 1]` in its
    first n columns (s = starts[i], n = lengths[i]); T is the longest window of the batch,
    so a batch's tensors depend on its windows only.
    """

    windows: range
    starts: Tensor
    inputs: Tensor
    targets: Tensor
    lengths: Tensor
    score_from: Tensor

    @classmethod
    def from_plan(cls, tokens: Tensor, plan: WindowPlan, windows: range) -> Batch:
        """Gather a batch from the flat token tensor (N + 1 tokens, on the model's device)."""
        index = slice(windows.start, windows.stop)
        starts = torch.tensor(plan.starts[index], device=tokens.device)
        lengths = torch.tensor(plan.lengths[index], device=tokens.device)
        score_from = torch.tensor(plan.score_from[index], device=tokens.device)
        offsets = torch.arange(int(lengths.max()), device=tokens.device)
        valid = offsets < lengths[:, None]
        at = torch.where(valid, starts[:, None] + offsets, 0)
        inputs = torch.where(valid, tokens[at], 0)
        targets = torch.where(valid, tokens[at + 1], 0)
        return cls(windows, starts, inputs, targets, lengths, score_from)

    @property
    def offsets(self) -> Tensor:
        """[T] positions 0..T-1 within a window."""
        return torch.arange(self.inputs.shape[1], device=self.inputs.device)

    @property
    def scored(self) -> Tensor:
        """[B, T] bool: the positions whose NLL counts toward val_bpb."""
        offsets = self.offsets
        return (offsets >= self.score_from[:, None]) & (offsets < self.lengths[:, None])

    @property
    def context(self) -> Tensor:
        """[B, T] bool: positions before the scored range (already scored by earlier windows)."""
        return self.offsets < self.score_from[:, None]


class Protocol(ABC):
    """An evaluation protocol; subclasses are registered by `name` in `golf.protocols`."""

    name: ClassVar[str]
    causal: ClassVar[bool] = True
    """False when a scored prediction may depend on later targets (reports flag it)."""

    def default_stride(self, seq_len: int) -> int:
        return seq_len

    def resolve(self, params: EvalParams) -> EvalParams:
        """The parameters this protocol actually runs with: its one stride rule.

        The CLI, the service, the workers and the reports all see the resolved params,
        so a report states the stride that was used. Resolving twice changes nothing.
        """
        if params.stride is None:
            return params.model_copy(update={"stride": self.default_stride(params.seq_len)})
        return params

    def plan(self, n_targets: int, params: EvalParams) -> WindowPlan:
        """The windows this protocol scores under `params`."""
        params = self.resolve(params)
        assert params.stride is not None  # resolve always sets it
        return make_plan(n_targets, params.seq_len, params.stride, params.plan, params.max_windows)

    @abstractmethod
    def nll(self, model: Scorer, batch: Batch, params: EvalParams) -> Tensor:
        """[B, T] float32 NLL (nats) at the batch's scored positions, 0 elsewhere."""
