"""Evaluation parameters shared by every protocol, validated once at the edge."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from golf.errors import parse_document
from golf.plan import PlanKind


class EvalParams(BaseModel):
    """Knobs of an evaluation run; `stride=None` means the protocol's own default.

    User input goes through `parse` (ConfigError, one line); nested in a wire schema it
    validates like any pydantic model.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    seq_len: int = Field(2048, ge=1, le=1 << 16)
    stride: int | None = Field(None, ge=1)
    batch_windows: int = Field(32, ge=1, le=4096)
    slot_steps: int = Field(24, ge=0, le=10_000)
    slot_lr: float = Field(0.012, gt=0, le=100)
    slot_lr_min: float = Field(0.001, ge=0, le=100)
    batch_invariant: bool = False
    reference: bool = False
    plan: PlanKind = "canonical"
    max_windows: int | None = Field(None, ge=1)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> EvalParams:
        """Validate user-supplied parameters; any problem is a ConfigError with one line."""
        return parse_document(cls, doc, "evaluation parameters", "evaluation parameter ")

    @model_validator(mode="after")
    def _stride_fits(self) -> EvalParams:
        if self.stride is not None and self.stride > self.seq_len:
            raise ValueError(f"stride {self.stride} exceeds seq_len {self.seq_len}")
        if self.slot_lr_min > self.slot_lr:
            raise ValueError(f"slot_lr_min {self.slot_lr_min} exceeds slot_lr {self.slot_lr}")
        return self
