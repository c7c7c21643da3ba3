"""Typed records that cross layers: an artifact's summary and the compliance flags.

`golf inspect --json` prints an `ArtifactSummary`, the service stores one per upload,
and reports, the client views and the dashboard read the same fields. Flags are
objects (`{"code": "non_causal_protocol", "protocol": "slot"}`), never strings to
re-parse. Torch-free, so the client side can import it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from golf.spec.errors import ConfigError

FlagCode = Literal[
    "ttt_on_val", "gptq_calibrated_on_val", "non_causal_protocol", "eval_time_over_limit"
]  # fmt: skip


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


BUDGET_BYTES = 16_000_000
"""The rules' cap on artifact + code bytes (decimal); golf.formats.artifact's, without torch."""


def code_file(path: str | Path) -> tuple[int, str]:
    """Bytes and sha256 of a submission's code file, as the rules count it: the file as
    submitted (train_gpt.py, shim or not). ConfigError naming the file if unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"--code {path}: cannot read it: {e.strerror or e}") from None
    return len(data), hashlib.sha256(data).hexdigest()


def size_block(artifact_bytes: int, code_bytes: int | None) -> dict[str, Any]:
    """Artifact + code against the budget. `code_bytes` None (or 0: nothing declared) is
    "code size not declared": the total then counts the artifact alone and says so."""
    declared = bool(code_bytes)
    total = artifact_bytes + (code_bytes or 0)
    return {
        "artifact_bytes": artifact_bytes,
        "code_bytes": code_bytes or 0,
        "code_declared": declared,
        "total_bytes": total,
        "verdict": "fits" if total <= BUDGET_BYTES else "over budget",
    }


def size_words(art: dict[str, Any]) -> str:
    """`123,456 bytes, fits` with `code size not declared` when the code is unknown."""
    total = art.get("total_bytes")
    size = f"{total:,} bytes" if isinstance(total, int) else "bytes unknown"
    verdict = art.get("verdict") or "verdict unknown"
    if art.get("code_declared") is False:
        return f"{size}, {verdict}; code size not declared"
    return f"{size}, {verdict}"


def time_flags(reports: Iterable[Any]) -> list[Flag]:
    """An `eval_time_over_limit` flag for each protocol report (a dict) whose 8×H100
    projection exceeds the rules' 600 s (golf.spec.evaltime); none where it is unknown."""
    from golf.spec.evaltime import EVAL_LIMIT_S

    return [
        Flag(code="eval_time_over_limit", protocol=r["protocol"])
        for r in reports
        if (r.get("projected_8xh100_s") or 0) > EVAL_LIMIT_S
    ]


def protocol_flags(protocols: Iterable[str]) -> list[Flag]:
    """A `non_causal_protocol` flag for each protocol whose scores may see later targets."""
    from golf.spec.registry import get_protocol

    return [
        Flag(code="non_causal_protocol", protocol=name)
        for name in protocols
        if not get_protocol(name).causal
    ]
