"""Typed records that cross layers: an artifact's summary and the compliance flags.

`golf inspect --json` prints an `ArtifactSummary`, the service stores one per upload,
and reports, the client views and the dashboard read the same fields. Flags are
objects (`{"code": "non_causal_protocol", "protocol": "slot"}`), never strings to
re-parse. Torch-free, so the client side can import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FlagCode = Literal["ttt_on_val", "gptq_calibrated_on_val", "non_causal_protocol"]


class Flag(BaseModel):
    """A contested technique a result depends on; `protocol` is set for protocol flags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: FlagCode
    protocol: str | None = None

    def applies_to(self, protocol: str) -> bool:
        """Artifact flags apply to every protocol; a protocol flag to its own."""
        return self.protocol is None or self.protocol == protocol


class ArtifactSummary(BaseModel):
    """What `golf inspect --json` prints and the service keeps for each artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str
    format_version: int
    arch: str = "gpt-sp1024"  # artifacts summarised before the field existed
    config: dict[str, Any]
    tensors: int
    parameters: int
    schemes: dict[str, int]
    artifact_bytes: int
    code_bytes: int
    total_bytes: int
    budget_bytes: int
    headroom_bytes: int
    verdict: Literal["fits", "over budget"]
    tokenizer_sha256: str
    vocab_size: int
    provenance: dict[str, Any]

    def flags(self) -> list[Flag]:
        """Contested techniques the provenance declares: TTT or GPTQ calibration on val."""
        flags = []
        if self.provenance.get("ttt_data_source") == "val":
            flags.append(Flag(code="ttt_on_val"))
        if self.provenance.get("gptq_calibration_source") == "val":
            flags.append(Flag(code="gptq_calibrated_on_val"))
        return flags


def protocol_flags(protocols: Iterable[str]) -> list[Flag]:
    """A `non_causal_protocol` flag for each protocol whose scores may see later targets."""
    from golf.spec.registry import get_protocol

    return [
        Flag(code="non_causal_protocol", protocol=name)
        for name in protocols
        if not get_protocol(name).causal
    ]
