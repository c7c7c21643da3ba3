"""Wire models of docs/API.md, and the job object assembled from store rows."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from golf.bytes import bits_per_byte
from golf.records import ArtifactSummary, Flag
from golf.report import ProtocolReport
from service.store import JobRow, ShardRow


class ArtifactOut(BaseModel):
    id: str
    bytes: int
    code_bytes: int
    total_bytes: int
    verdict: str
    config: dict[str, Any]
    tokenizer_sha256: str
    vocab_size: int
    provenance: dict[str, Any]
    flags: list[Flag]

    @classmethod
    def from_summary(cls, summary: ArtifactSummary) -> ArtifactOut:
        """From golf's `ArtifactSummary` (what `golf inspect --json` prints)."""
        return cls(
            id=summary.sha256,
            bytes=summary.artifact_bytes,
            code_bytes=summary.code_bytes,
            total_bytes=summary.total_bytes,
            verdict=summary.verdict,
            config=summary.config,
            tokenizer_sha256=summary.tokenizer_sha256,
            vocab_size=summary.vocab_size,
            provenance=summary.provenance,
            flags=summary.flags(),
        )


class DatasetOut(BaseModel):
    name: str
    sha256: str
    tokenizer_sha256: str
    vocab_size: int
    val_tokens: int


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


class JobCreate(BaseModel):
    """`params` holds `golf.protocols.EvalParams` fields; they are validated by golf."""

    model_config = ConfigDict(extra="forbid")

    artifact: str = Field(max_length=64)
    dataset: str = Field(max_length=255)
    protocols: list[str] = Field(min_length=1, max_length=16)
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-1000, le=1000)


class ShardOut(BaseModel):
    protocol: str
    shard: int
    state: str
    windows_done: int
    windows_total: int
    tokens: int
    bytes: int
    nll_sum: float
    worker: str | None
    attempts: int


class Progress(BaseModel):
    windows_done: int
    windows_total: int


class Running(BaseModel):
    val_bpb: float | None
    tokens: int
    bytes: int


class JobSummary(BaseModel):
    id: str
    owner: str
    state: str
    artifact: str
    dataset: str
    protocols: list[str]
    params: dict[str, Any]
    priority: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    progress: Progress
    running: dict[str, Running]
    eta_s: float | None


class JobOut(JobSummary):
    shards: list[ShardOut]


class JobList(BaseModel):
    jobs: list[JobSummary]


class TableRow(BaseModel):
    protocol: str
    val_bpb: float
    delta_bpb: float


class ArtifactBrief(BaseModel):
    id: str
    total_bytes: int
    verdict: str
    flags: list[Flag]


class Environment(BaseModel):
    device: str
    torch: str
    workers: int
    golf_eval: str


class ReportOut(BaseModel):
    job: str
    reports: list[ProtocolReport]
    table: list[TableRow]
    artifact: ArtifactBrief
    flags: list[Flag]
    environment: Environment
    digest: str


class WindowOut(BaseModel):
    protocol: str
    window: int
    nll_sum: float
    tokens: int
    bytes: int


class WindowList(BaseModel):
    windows: list[WindowOut]


class Health(BaseModel):
    ok: bool
    workers: int
    ray: bool
    db: bool


def job_object(job: JobRow, shards: list[ShardRow]) -> dict[str, Any]:
    """The job object of the API (with `shards`), its progress, running val_bpb and ETA."""
    done = sum(s.windows_done for s in shards)
    total = sum(s.windows_total for s in shards)
    running: dict[str, dict[str, Any]] = {}
    for protocol in job.protocols:
        mine = [s for s in shards if s.protocol == protocol]
        n_bytes = sum(s.bytes for s in mine)
        nll = sum(s.nll_sum for s in mine)
        running[protocol] = {
            "val_bpb": bits_per_byte(nll, n_bytes) if n_bytes else None,
            "tokens": sum(s.tokens for s in mine),
            "bytes": n_bytes,
        }
    eta = None
    if job.state == "running" and job.started_at and 0 < done < total:
        eta = (time.time() - job.started_at) * (total - done) / done
    fields = {k: getattr(job, k) for k in JobSummary.model_fields if hasattr(job, k)}
    return {
        **fields,
        "protocols": list(job.protocols),
        "params": job.params.model_dump(mode="json"),
        "progress": {"windows_done": done, "windows_total": total},
        "running": running,
        "eta_s": eta,
        "shards": [
            {k: v for k, v in asdict(s).items() if k in ShardOut.model_fields} for s in shards
        ],
    }
