"""How a model runs an evaluation on a device: precision, attention kernel, compilation and
SLOT kernel, resolved once from `EvalParams` and recorded in every report (`EngineInfo`).

`Engine.resolve(params, device)` turns the "auto" settings into what will run;
`engine.prepare(model)` gives an `EngineModel`, the `Scorer` the protocols call:

* fp32: the model itself, untouched: numbers are bit-identical to calling it directly.
* bf16: autocast(bf16) around `forward_hidden` only; the hidden is returned as fp32, so
  the head, softcap, cross entropy and the whole SLOT fit stay fp32. As in the records'
  GPU eval (PR #1313 builds the model in bf16, then restores linear layers and small
  control tensors to fp32), the embedding tables (`tok_emb` — also the tied head —, the
  BigramHash table, the value-embedding table: every `nn.Embedding`) are *kept in bf16*
  on a private copy of the model, so the body starts from bf16 embeddings as theirs does;
  linear weights and control tensors stay fp32 (autocast casts them per matmul). The
  head reads the bf16-rounded table, widened to fp32 (`EngineModel.head_weight`).
* compile: `torch.compile(forward_hidden, dynamic=False)`, `mode="reduce-overhead"`
  (CUDA graphs) on CUDA; `evaluate` then pads every batch to B windows of L tokens with
  empty windows (length 0), which are neither scored nor adapted.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from golf.models.attention import Adapter, AttentionContext, flash_attn_available
from golf.protocols.base import HeadConfig, Scorer
from golf.protocols.slot_kernels import resolve_slot_kernel
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams


class EngineInfo(BaseModel):
    """What ran: every report carries it (`attention` is the backend detected on the last
    forward, e.g. "sdpa-cpu", "flash-attn-3", "sdpa-flash"; "+"-joined when the pruned
    last layer needed another kernel)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str
    device_name: str
    precision: Literal["fp32", "bf16"]
    attention: str
    compiled: bool
    slot_kernel: Literal["torch", "triton"]
    torch: str


@dataclass(frozen=True)
class Engine:
    """Resolved engine settings for one device (no "auto" left)."""

    device: torch.device
    precision: Literal["fp32", "bf16"]
    attention: Literal["auto", "sdpa", "flash"]
    compile: bool
    slot_kernel: Literal["torch", "triton"]
    compile_backend: str = "inductor"
    """torch.compile's backend; tests use "eager" to exercise the static-shape path fast."""

    @classmethod
    def resolve(cls, params: EvalParams, device: torch.device | str) -> Engine:
        """The settings that run on `device`; ConfigError (one line) for impossible ones."""
        device = torch.device(device)
        cuda = device.type == "cuda"
        precision = params.precision
        if precision == "auto":
            precision = "bf16" if cuda else "fp32"
        if params.attention == "flash" and (not cuda or flash_attn_available() is None):
            raise ConfigError(
                "attention 'flash' needs flash-attn (flash_attn or flash_attn_interface) "
                "and a CUDA device; use attention 'auto' or 'sdpa'"
            )
        if params.attention == "flash" and precision == "fp32":
            raise ConfigError("attention 'flash' runs in bf16 only; use precision 'bf16'")
        return cls(
            device=device,
            precision=precision,
            attention=params.attention,
            compile=params.compile,
            slot_kernel=resolve_slot_kernel(params.slot_kernel, device),
        )

    def prepare(self, model: Scorer) -> EngineModel:
        """The model as the protocols should call it under these settings."""
        if isinstance(model, EngineModel):
            model = model.model
        if self.precision == "bf16" and isinstance(model, nn.Module):
            model = bf16_embeddings(model)
        return EngineModel(self, model)

    @contextlib.contextmanager
    def body(self) -> Iterator[None]:
        """Around the transformer body: bf16 autocast when asked."""
        if self.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield


def bf16_embeddings(model: nn.Module) -> nn.Module:
    """A copy of `model` whose embedding tables are bf16 (see the module docstring)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            module.to(torch.bfloat16)
    return model


class EngineModel:
    """A `Scorer` running `model` under an `Engine`; `forward_hidden` returns fp32."""

    def __init__(self, engine: Engine, model: Scorer):
        self.engine = engine
        self.model = model
        self.config: HeadConfig = model.config
        self._head = model.head_weight.detach().float()
        self.slot_kernel = engine.slot_kernel
        self.attention_context = AttentionContext(mode=engine.attention)
        self._cuda_graphs = engine.compile and engine.device.type == "cuda"
        self._forward = self._body
        if engine.compile:
            if engine.device.type == "cuda":  # settle the SDPA backend choice eagerly
                self.forward_hidden(torch.zeros(1, 16, dtype=torch.long, device=engine.device))
                rows = torch.full((1, 1), 15, dtype=torch.long, device=engine.device)
                self.forward_hidden(
                    torch.zeros(1, 16, dtype=torch.long, device=engine.device), rows
                )
            mode = "reduce-overhead" if self._cuda_graphs else None
            self._forward = torch.compile(
                self._body, dynamic=False, mode=mode, backend=engine.compile_backend
            )

    @property
    def head_weight(self) -> Tensor:
        """[V, d] fp32 (the bf16-rounded table in bf16 mode)."""
        return self._head

    @property
    def attention(self) -> str:
        """The attention backends of the last forward ("+"-joined), or "none" before one;
        kept on the context, which eager copies share, so a copy's forwards count too."""
        return self.attention_context.ran

    def trainable_copy(self) -> EngineModel:
        """A private deep copy of the model, frozen until a protocol trains it, running
        eagerly under this engine (test-time training never touches the original)."""
        if not isinstance(self.model, nn.Module):
            raise ConfigError("test-time training needs a torch model (an nn.Module)")
        module = copy.deepcopy(self.model)  # bf16 mode: its tables are bf16 already
        module.requires_grad_(False)
        return self.eager_copy(module)

    def eager_copy(self, model: Scorer) -> EngineModel:
        """This engine model (same class, same attention context) running `model` eagerly:
        what test-time training adapts, leaving the original untouched."""
        new = copy.copy(self)
        new.engine = dataclasses.replace(self.engine, compile=False)
        new.model = model
        new._head = model.head_weight.detach().float()
        new._cuda_graphs = False
        new._forward = new._body
        return new

    def _body(self, ids: Tensor, rows: Tensor | None) -> Tensor:
        with self.engine.body():
            return self.model.forward_hidden(ids, rows, attention=self.attention_context)

    def forward_hidden(
        self,
        ids: Tensor,
        rows: Tensor | None = None,
        segments: Tensor | None = None,
        adapter: Adapter | None = None,
    ) -> Tensor:
        """fp32 hidden; `segments` bound attention per document and `adapter` adds
        per-call LoRA updates (both run eagerly, outside a compiled graph)."""
        seen = self.attention_context.seen
        seen.clear()
        if segments is not None or adapter is not None:
            ctx = self.attention_context.for_call(segments, adapter)
            with self.engine.body():
                hidden = self.model.forward_hidden(ids, rows, attention=ctx)
            if seen:
                self.attention_context.ran = "+".join(seen)
            return hidden.float()
        if self._cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        hidden = self._forward(ids, rows)
        if seen:
            self.attention_context.ran = "+".join(seen)
        if self._cuda_graphs:  # the graph's output buffer is reused by the next replay
            return hidden.float().clone() if hidden.dtype == torch.float32 else hidden.float()
        return hidden.float()

    def logits(self, hidden: Tensor, adapter: Adapter | None = None) -> Tensor:
        """fp32 softcapped logits (outside autocast)."""
        with torch.autocast(hidden.device.type, enabled=False):
            if adapter is None:
                return self.model.logits(hidden.float())
            return self.model.logits(hidden.float(), adapter=adapter)  # type: ignore[call-arg]

    def info(self) -> EngineInfo:
        device = self.engine.device
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
        else:
            name = platform.processor() or platform.machine() or "cpu"
        return EngineInfo(
            device=device.type,
            device_name=name,
            precision=self.engine.precision,
            attention=self.attention,
            compiled=self.engine.compile,
            slot_kernel=self.engine.slot_kernel,
            torch=torch.__version__,
        )


def pick_device(device: str) -> str:
    """A torch device name from `auto` or the user's choice; an absent GPU is a ConfigError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown torch device {device!r}") from None
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {device} is not available: {torch.cuda.device_count()} GPUs")
    return device


def model_device(model: Scorer) -> torch.device:
    return model.head_weight.device


def prepare(model: Scorer, params: EvalParams) -> EngineModel:
    """`model` under the engine `params` ask for on its device (already prepared: as is)."""
    if isinstance(model, EngineModel):
        return model
    return Engine.resolve(params, model_device(model)).prepare(model)
