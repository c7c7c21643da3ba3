"""Wire models of docs/API.md, and the job object assembled from store rows."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from golf.data.bytes import bits_per_byte
from golf.engine.report import ProtocolReport
from golf.spec.jobplan import ProtocolPlan
from golf.spec.records import ArtifactSummary, Flag
from golf.spec.registry import get_protocol
from service.store import JobProgress, JobRow, ProtocolSums, ShardRow

MAX_LISTED_SHARDS = 256
"""Shards a job object lists; the job's cost limit keeps most jobs below it."""


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


class RecordImportOut(ArtifactOut):
    """The stored `.golf` of `POST /v1/artifacts/import`, and how `golf import` decided:
    the record's folder name, the artifact format detected, the family, and one line per
    decision (what `golf import` prints on stderr)."""

    record: str
    format: str
    arch: str
    decisions: list[str]

    @classmethod
    def from_import(
        cls, summary: ArtifactSummary, fmt: str, arch: str, decisions: list[str]
    ) -> RecordImportOut:
        base = ArtifactOut.from_summary(summary).model_dump()
        record = summary.provenance["notes"].get("record", "")
        return cls(**base, record=record, format=fmt, arch=arch, decisions=decisions)


class DatasetOut(BaseModel):
    name: str
    sha256: str
    tokenizer_sha256: str
    vocab_size: int
    val_tokens: int


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


GROUP_PATTERN = r"^[A-Za-z0-9._-]+$"


class JobCreate(BaseModel):
    """`params` holds `golf.protocols.EvalParams` fields; they are validated by golf."""

    model_config = ConfigDict(extra="forbid")

    artifact: str = Field(max_length=64)
    dataset: str = Field(max_length=255)
    protocols: list[str] = Field(min_length=1, max_length=16)
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-1000, le=1000, strict=True)
    group: str | None = Field(None, max_length=64, pattern=GROUP_PATTERN)
    """A submission's name, shared by the jobs of its seeds (`golf compare --group`) and
    ranked as one entry by the leaderboard."""
    code_bytes: int | None = Field(None, ge=0, le=1 << 31)
    """Bytes of the submission's code file (`golf submit --code FILE`), counted with the
    artifact against the 16,000,000-byte cap; overrides the artifact's declaration."""
    code_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    chain_workers: int | None = Field(None, ge=1, le=1024, strict=True)
    """Workers a chain protocol (`ttt`, `ttt-phased`) runs on as one gang, data-parallel;
    default every worker of the pool. Its score depends on the count by summation order
    only (≤ 1e-6 val_bpb, docs/TTT.md); the job records the count it ran with."""


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


class ChainOut(BaseModel):
    """Where a chain protocol (`ttt`, `ttt-phased`) stands: one run on a gang of workers,
    step by step, rather than shards."""

    unit: str
    """What a step is: `chunk` (ttt) or `document batch` (ttt-phased)."""
    steps: int
    steps_done: int
    workers: int
    """Gang size: workers that run its steps data-parallel."""
    held_by: str | None
    """The workers holding it now (`worker-0+worker-1`), while it runs."""
    state: str
    checkpoint: int | None
    """The step it resumes at if it loses a worker (its latest checkpoint)."""
    resumed_at: int | None
    """The step its latest run resumed from (after a lost worker or a restart)."""
    phases: tuple[int, int] | None = None
    """(phases done, phases) of a chain with global phases (`ttt-phased`)."""
    attempts: int


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
    shard_counts: dict[str, int]
    """Shards by state: queued, running, done, stopping, cancelled, failed."""
    filename: str | None = None
    """The artifact's file name as its owner uploaded it, if the upload sent one."""
    group: str | None = None
    """The group (submission) the job was submitted under, if any."""
    partial: bool = False
    """Its plan scores fewer windows than the whole val (max_windows cut it): decided from
    the counts, so a max_windows past the end is no partial run."""
    chains: dict[str, ChainOut] = Field(default_factory=dict)
    """Per chain protocol, where its run stands (protocols cut into shards are absent)."""


class JobOut(JobSummary):
    shards: list[ShardOut]
    """The first MAX_LISTED_SHARDS shards in plan order; all of them via
    `GET /v1/jobs/{id}/shards`."""


class JobList(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None = None
    """Pass as `cursor` for the next (older) page; null on the last one."""


class SeriesOut(BaseModel):
    job: str
    series: dict[str, list[tuple[int, float]]]
    """Per protocol, the running val_bpb as `[windows scored, val_bpb]` pairs, one per
    stored batch, in order; thinned to at most 200 points (the first and last kept)."""
    windows_total: dict[str, int]


class TableRow(BaseModel):
    protocol: str
    val_bpb: float
    delta_bpb: float | None
    """To the first protocol; null when they scored different targets or the run is
    partial (golf.spec.tables.scored_alike)."""


class ArtifactBrief(BaseModel):
    id: str
    total_bytes: int
    """Artifact + code bytes (the artifact alone when no code size was declared)."""
    verdict: str
    flags: list[Flag]
    artifact_bytes: int | None = None
    code_bytes: int | None = None
    code_declared: bool | None = None
    """Whether the code bytes are known (`golf submit --code FILE`, or the artifact's
    own declaration); false: "code size not declared"."""


class Environment(BaseModel):
    device: str
    device_name: str = "unknown"
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


class LeaderboardRow(BaseModel):
    protocol: str
    val_bpb: float
    """The mean over the entry's seeds (its distinct artifacts)."""
    val_bpb_std: float | None
    """Sample std (ddof 1) over the seeds; null for a single seed."""
    val_loss: float
    """Mean val_loss (nats per token) over the seeds."""
    seeds: int
    val_bpbs: list[float]
    owner: str
    artifact: str
    group: str | None
    job: str
    """The latest of `jobs`."""
    jobs: list[str]
    params: dict[str, Any]
    """The eval parameters that decide the score (service/boards.py eval_params)."""
    eval_s: float | None
    """The slowest seed's wall seconds."""
    projected_8xh100_s: float | None
    device: str | None
    total_bytes: int
    code_bytes: int
    verdict: str
    flags: list[Flag]
    """The artifacts' flags and this protocol's own."""
    partial: bool
    """Only with include_partial: a run that scored less than the whole val."""
    finished_at: float | None


class Leaderboard(BaseModel):
    dataset: str
    board: str = "mine"
    rows: list[LeaderboardRow]
    """One row per entry (an owner's group, else an artifact), protocol and eval
    parameters, sorted by protocol then mean val_bpb."""


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    published: bool = True


class PublishOut(BaseModel):
    job: str
    published: bool


class WindowOut(BaseModel):
    protocol: str
    window: int
    nll_sum: float
    tokens: int
    bytes: int


class WindowList(BaseModel):
    windows: list[WindowOut]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last one."""


class ShardList(BaseModel):
    shards: list[ShardOut]
    next_offset: int | None


class Health(BaseModel):
    ok: bool
    workers: int
    ray: bool
    db: bool
    """False when the last periodic `PRAGMA quick_check` found the database damaged."""
    db_error: str | None = None
    db_checked_at: float | None = None


def chain_object(plan: ProtocolPlan, sums: ProtocolSums) -> dict[str, Any]:
    protocol = get_protocol(plan.protocol)
    phases = protocol.phases(plan.batch_sizes, plan.params, sums.steps_done)  # type: ignore[attr-defined]
    return {
        "unit": protocol.step_name,  # type: ignore[attr-defined]
        "phases": phases,
        "steps": plan.batches,
        "steps_done": sums.steps_done,
        "workers": plan.chain_workers,
        "held_by": sums.workers if sums.state == "running" else None,
        "state": sums.state or "queued",
        "checkpoint": sums.checkpoint,
        "resumed_at": sums.resumed_at,
        "attempts": sums.attempts,
    }


def job_object(
    job: JobRow, progress: JobProgress, shards: list[ShardRow] | None = None
) -> dict[str, Any]:
    """The job object of the API: progress, running val_bpb and ETA from aggregated
    shard totals, shard counts by state, and with `shards` the first MAX_LISTED_SHARDS."""
    sums = [progress.protocols.get(p, ProtocolSums()) for p in job.protocols]
    done = sum(t.windows_done for t in sums)
    total = sum(t.windows_total for t in sums)
    running = {
        protocol: {
            "val_bpb": bits_per_byte(t.nll_sum, t.bytes) if t.bytes else None,
            "tokens": t.tokens,
            "bytes": t.bytes,
        }
        for protocol, t in zip(job.protocols, sums, strict=True)
    }
    eta = None
    if job.state == "running" and job.started_at and 0 < done < total:
        eta = (time.time() - job.started_at) * (total - done) / done
    fields = {k: getattr(job, k) for k in JobSummary.model_fields if hasattr(job, k)}
    doc = {
        **fields,
        "protocols": list(job.protocols),
        "params": job.params.model_dump(mode="json"),
        "progress": {"windows_done": done, "windows_total": total},
        "running": running,
        "eta_s": eta,
        "shard_counts": progress.counts,
        "partial": any(
            plan.partial if plan.partial is not None else plan.params.max_windows is not None
            for plan in job.plans.values()
        ),
        "chains": {
            protocol: chain_object(plan, progress.protocols.get(protocol, ProtocolSums()))
            for protocol, plan in job.plans.items()
            if plan.chain
        },
    }
    if shards is not None:
        doc["shards"] = [
            {k: v for k, v in asdict(s).items() if k in ShardOut.model_fields} for s in shards
        ]
    return doc
