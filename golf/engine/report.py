"""Protocol reports: the one JSON shape in which every layer states a val_bpb.

`golf eval --json`, the service and the workers' merge all produce `ProtocolReport`s,
so a number reported anywhere carries the parameters, artifact and dataset it was
measured with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from golf import __version__
from golf.engine.engine import EngineInfo
from golf.engine.evaluate import WindowRecord, summarize
from golf.spec.evaltime import projected_8xh100_s
from golf.spec.params import EvalParams
from golf.spec.records import Flag
from golf.spec.stats import Windows, score_ci


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
    windows_total: int | None = None
    """Windows of the whole val's plan under these params (max_windows aside); None in
    reports made before it was recorded."""
    partial: bool = False
    """Scored fewer windows than the whole val's plan (max_windows cut it): decided from
    the counts, so a max_windows that covers every window is not partial."""
    wall_s: float | None = None
    """Wall-clock seconds from start to end (a service job: first shard dispatched to the
    last one done); `elapsed_s` is the compute seconds, summed over shards."""
    projected_8xh100_s: float | None = None
    """`elapsed_s` projected to 8 H100s (golf.spec.evaltime), when it ran on an H100-class GPU."""
    ci95: tuple[float, float] | None = None
    """Within-run 95 % CI of val_bpb, from resampling this run's windows (golf.spec.stats.
    score_ci): how much the score depends on which text was scored, not seed variance."""


def digest(
    artifact: str,
    dataset_sha256: str,
    params: dict[str, dict[str, Any]],
    precision: dict[str, str] | None = None,
) -> str:
    """sha256 of everything that determines the numbers: inputs, protocols (the keys of
    `params`, in order) and their resolved params (engine settings included), the
    precision that ran (`auto` resolves per device), golf-eval's version. The service's
    job reports and `golf eval --json` hash the same document, so equal inputs give
    equal digests wherever they ran."""
    doc: dict[str, Any] = {
        "artifact": artifact,
        "dataset": dataset_sha256,
        "protocols": list(params),
        "params": params,
        "golf_eval": __version__,
    }
    if precision is not None:
        doc["precision"] = precision
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


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
    windows_total: int | None = None,
    wall_s: float | None = None,
    audit: dict[str, Any] | None = None,
) -> ProtocolReport:
    """A report from per-window records, however and wherever they were computed;
    `windows_total` is the uncut plan's window count (to tell a partial run), `audit` the
    stream causality audit of a protocol that adapts as it scores."""
    summary = summarize(records)
    partial = windows_total is not None and summary["windows"] < windows_total
    return ProtocolReport(
        protocol=protocol,
        **summary,
        windows_total=windows_total,
        partial=partial,
        audit=audit,
        wall_s=wall_s,
        projected_8xh100_s=projected_8xh100_s(elapsed_s, engine.device_name),
        ci95=score_ci(Windows.of(records)) if records else None,
        elapsed_s=elapsed_s,
        params=params,
        artifact_sha256=artifact_sha256,
        dataset_sha256=dataset_sha256,
        engine=engine,
        flags=list(flags),
        byte_source=byte_source,
    )
