"""What a protocol is (a window plan plus a per-position NLL for one batch of windows) and
what it may ask of a model (`Scorer`)."""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams
from golf.spec.plan import WindowPlan, make_plan


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
    relies on it being linear before the softcap. `golf.models.gpt.GPT` implements this; a
    second model family (registered by architecture in `golf.models.registry`) implements
    the same surface and every protocol runs on it unchanged.
    """

    config: HeadConfig

    @property
    def head_weight(self) -> Tensor:
        """[V, d] output projection (tied or not)."""
        ...

    def forward_hidden(self, ids: Tensor, rows: Tensor | None = None) -> Tensor:
        """[B, T] token ids -> [B, T, d] hidden states after the final norm.

        With `rows` ([B, R] positions per window) only the hidden at those positions,
        [B, R, d], equal to the full result gathered there; a model may prune work that
        feeds no other position (golf.models.gpt.GPT prunes its last layer). A model
        family's own forward_hidden also takes `attention=` (a
        golf.models.attention.AttentionContext): the engine passes the one it owns.
        """
        ...

    def logits(self, hidden: Tensor) -> Tensor:
        """[..., d] hidden -> [..., V] softcapped logits."""
        ...


@typing.runtime_checkable
class Trainable(Scorer, typing.Protocol):
    """A model test-time training adapts (`golf.engine.EngineModel.trainable_copy`): its
    torch module, and a forward that takes document segments and per-call adapters."""

    model: typing.Any

    def forward_hidden(  # type: ignore[override]
        self,
        ids: Tensor,
        rows: Tensor | None = None,
        segments: Tensor | None = None,
        adapter: typing.Any = None,
    ) -> Tensor: ...

    def logits(self, hidden: Tensor, adapter: typing.Any = None) -> Tensor:  # type: ignore[override]
        ...


@dataclass(frozen=True)
class Batch:
    """Windows `windows` of a plan as padded tensors; padding is never scored or adapted on.

    Row i holds inputs `tokens[s : s + n]` and targets `tokens[s + 1 : s + n + 1]` in its
    first n columns (s = starts[i], n = lengths[i]); T is the longest window of the batch,
    so a batch's tensors depend on its windows only. `from_plan(..., pad=(B, L))` gives
    static shapes instead (for compiled forwards): rows past `len(windows)` are empty
    windows (length 0: nothing scored, nothing adapted) and T = L.
    The plan's numbers also stay on the host (`host_lengths`, `host_score_from`), so
    shapes that depend on them need no device sync.
    """

    windows: range
    starts: Tensor
    inputs: Tensor
    targets: Tensor
    lengths: Tensor
    score_from: Tensor
    host_lengths: np.ndarray | None = None
    host_score_from: np.ndarray | None = None

    @classmethod
    def from_plan(
        cls,
        tokens: Tensor,
        plan: WindowPlan,
        windows: range,
        pad: tuple[int, int] | None = None,
    ) -> Batch:
        """Gather a batch from the flat token tensor (N + 1 tokens, on the model's device)."""
        index = slice(windows.start, windows.stop)
        host = [np.asarray(a[index], dtype=np.int64) for a in (plan.starts, plan.lengths)]
        host.append(np.asarray(plan.score_from[index], dtype=np.int64))
        width = int(host[1].max())
        if pad is not None:
            n_windows, width = pad
            extra = n_windows - len(windows)
            host = [np.concatenate((a, np.zeros(max(extra, 0), np.int64))) for a in host]
        starts, lengths, score_from = (torch.tensor(a, device=tokens.device) for a in host)
        offsets = torch.arange(width, device=tokens.device)
        valid = offsets < lengths[:, None]
        at = torch.where(valid, starts[:, None] + offsets, 0)
        inputs = torch.where(valid, tokens[at], 0)
        targets = torch.where(valid, tokens[at + 1], 0)
        return cls(windows, starts, inputs, targets, lengths, score_from, host[1], host[2])

    def row_index(self, first: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """Positions `[first, length)` of each window as ([B, R] rows, [B, R] destination).

        `first` defaults to the scored range's start. R is the longest span of the batch,
        computed on the host. `rows` are valid positions (spare slots repeat position 0,
        for gathering); `dest` is the same but T for spare slots, so scattering into a
        [B, T + 1] buffer and dropping its last column puts each row where it belongs.
        """
        lengths, score_from = self.host_lengths, self.host_score_from
        if lengths is None or score_from is None:  # built by hand: read them back once
            lengths, score_from = self.lengths.cpu().numpy(), self.score_from.cpu().numpy()
        first = score_from if first is None else first
        span = max(int((lengths - first).max()), 1)
        pos = first[:, None] + np.arange(span)[None, :]
        inside = pos < lengths[:, None]
        device = self.inputs.device
        rows = torch.from_numpy(np.where(inside, pos, 0)).to(device, non_blocking=True)
        dest = np.where(inside, pos, self.inputs.shape[1])
        return rows, torch.from_numpy(dest).to(device, non_blocking=True)

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
    sequential: ClassVar[bool] = False
    """True for protocols that adapt along the stream (golf.protocols.stream): no batch
    of theirs can be scored alone."""
    doc_bounded: ClassVar[bool] = False
    """True when the protocol implements `doc_bounded` (per-document attention)."""
    doc_split: ClassVar[bool] = False
    """True when it also implements `doc_max_len` (documents cut every N tokens)."""

    def default_stride(self, seq_len: int) -> int:
        return seq_len

    def cost_factor(self, params: EvalParams) -> float:
        """Work per scored window-token relative to one frozen forward (job pricing)."""
        return 1.0

    def resolve(self, params: EvalParams) -> EvalParams:
        """The parameters this protocol actually runs with: its one stride rule.

        The CLI, the service, the workers and the reports all see the resolved params,
        so a report states the stride that was used. Resolving twice changes nothing.
        """
        if params.doc_bounded and not self.doc_bounded:
            raise ConfigError(f"protocol {self.name!r} has no document-bounded mode")
        if params.doc_max_len and not self.doc_split:
            raise ConfigError(f"protocol {self.name!r} does not cut documents (doc_max_len)")
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
