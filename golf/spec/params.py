"""Evaluation parameters shared by every protocol, validated once at the edge.

Torch-free on purpose: the client CLI builds `golf submit`'s options from these fields
in an install that has no torch.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from golf.spec.errors import parse_document

PlanKind = Literal["canonical", "legacy", "legacy-stride", "full", "full-last"]
Precision = Literal["auto", "fp32", "bf16"]
AttentionKind = Literal["auto", "sdpa", "flash"]
SlotKernel = Literal["auto", "torch", "triton"]


class EvalParams(BaseModel):
    """Knobs of an evaluation run; `stride=None` means the protocol's own default.

    User input goes through `parse` (ConfigError, one line); nested in a wire schema it
    validates like any pydantic model. Each field's description is its CLI help.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    seq_len: int = Field(2048, ge=1, le=1 << 16, description="Window length L.")
    stride: int | None = Field(
        None, ge=1, description="Window stride; default: each protocol's own (plain uses L)."
    )
    batch_windows: int = Field(32, ge=1, le=4096, description="Windows per batch B.")
    slot_steps: int = Field(24, ge=0, le=10_000, description="SLOT AdamW steps.")
    slot_lr: float = Field(0.012, gt=0, le=100, description="SLOT peak learning rate.")
    slot_lr_min: float = Field(
        0.001, ge=0, le=100, description="SLOT final learning rate (cosine)."
    )
    batch_invariant: bool = Field(
        False, description="Normalise SLOT's loss per window, not per batch."
    )
    reference: bool = Field(False, description="Run SLOT's literal reference path (slow).")
    plan: PlanKind = Field(
        "canonical",
        description="canonical (each target once), or a record's own sliding plan: legacy "
        "(windows down to 1 token, tail over-counted), legacy-stride (windows shorter than "
        "the stride dropped), full (whole windows only; the first scores all), full-last "
        "(whole windows only, each scores its last stride tokens).",
    )
    max_windows: int | None = Field(None, ge=1, description="Score only the first N windows.")
    precision: Precision = Field(
        "auto",
        description="Transformer body precision: fp32 (exact) or bf16 autocast; auto = bf16 "
        "on CUDA, fp32 on CPU. Head, softcap, loss and the SLOT fit are always fp32.",
    )
    attention: AttentionKind = Field(
        "auto",
        description="Attention kernel: auto (FA3 on Hopper, FA2 if installed, else SDPA with "
        "a flash/cuDNN backend forced), sdpa, or flash (requires flash-attn).",
    )
    compile: bool = Field(
        False, description="torch.compile the forward with static (padded) batch shapes."
    )
    slot_kernel: SlotKernel = Field(
        "auto",
        description="SLOT fast-path step: torch, or the fused Triton kernel; auto = triton "
        "on CUDA when importable, else torch.",
    )

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> EvalParams:
        """Validate user-supplied parameters strictly (no `true` or `"128"` for an int);
        any problem is a ConfigError with one line."""
        return parse_document(
            cls, doc, "evaluation parameters", "evaluation parameter ", strict=True
        )

    @model_validator(mode="after")
    def _stride_fits(self) -> EvalParams:
        if self.stride is not None and self.stride > self.seq_len:
            raise ValueError(f"stride {self.stride} exceeds seq_len {self.seq_len}")
        if self.slot_lr_min > self.slot_lr:
            raise ValueError(f"slot_lr_min {self.slot_lr_min} exceeds slot_lr {self.slot_lr}")
        return self
