"""Protocol reports: the one JSON shape in which every layer states a val_bpb.

`golf eval --json`, the service and the workers' merge all produce `ProtocolReport`s,
so a number reported anywhere carries the parameters, artifact and dataset it was
measured with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from golf.engine.engine import EngineInfo
from golf.engine.evaluate import WindowRecord, summarize
from golf.spec.params import EvalParams
from golf.spec.records import Flag


class ProtocolReport(BaseModel):
    """val_bpb of one protocol over one dataset, with everything needed to reproduce it."""

    model_config = ConfigDict(frozen=True)

    protocol: str
    val_bpb: float
    val_loss: float
    tokens: int
    bytes: int
    windows: int
    elapsed_s: float
    params: EvalParams
    artifact_sha256: str
    dataset_sha256: str
    engine: EngineInfo
    flags: list[Flag] = []
    """Contested techniques this number depends on: the artifact's (TTT or GPTQ
    calibration on val, from its provenance) and the protocol's (non-causal)."""
    audit: dict[str, Any] | None = None
    """For protocols that adapt as they score: the stream flip audit's verdict and sample
    size (golf.audit.causality.audit_stream), when it was run."""
    byte_source: str = "sentencepiece-luts"  # or "sidecar" (CaseOps datasets)


def make_report(
    protocol: str,
    records: Sequence[WindowRecord],
    params: EvalParams,
    *,
    elapsed_s: float,
    artifact_sha256: str,
    dataset_sha256: str,
    engine: EngineInfo,
    flags: Sequence[Flag] = (),
    byte_source: str = "sentencepiece-luts",
) -> ProtocolReport:
    """A report from per-window records, however and wherever they were computed."""
    return ProtocolReport(
        protocol=protocol,
        **summarize(records),
        elapsed_s=elapsed_s,
        params=params,
        artifact_sha256=artifact_sha256,
        dataset_sha256=dataset_sha256,
        engine=engine,
        flags=list(flags),
        byte_source=byte_source,
    )
