"""The final job report, built from stored window records with golf's own `make_report`,
so it carries the same numbers, to the bit, as `golf eval --json` on the same inputs."""

from __future__ import annotations

import json
from typing import Any

from golf.engine.engine import Engine, EngineInfo
from golf.engine.report import digest as report_digest
from golf.engine.report import make_report
from golf.spec.params import EvalParams
from golf.spec.records import ArtifactSummary, protocol_flags, size_block, time_flags
from golf.spec.tables import scored_alike
from service.store import JobRow, Store


def _engine(
    params: EvalParams, reported: dict[str, Any] | None, environment: dict[str, Any]
) -> EngineInfo:
    """What a protocol ran on: its workers' report, or, for shards stored before workers
    reported engines, what its params resolve to on the workers' device."""
    if reported is not None:
        return EngineInfo.model_validate(reported)
    device = "cuda" if "cuda" in str(environment.get("device", "")) else "cpu"
    engine = Engine.resolve(params, device)
    return EngineInfo(
        device=device,
        device_name=str(environment.get("device_name", "unknown")),
        precision=engine.precision,
        attention="unknown",
        compiled=engine.compile,
        slot_kernel=engine.slot_kernel,
        torch=str(environment.get("torch", "unknown")),
    )


class IncompleteJob(Exception):
    """The stored windows do not cover the plan exactly once (a bug, never reported)."""


class MixedEngines(Exception):
    """A protocol's shards ran on workers with different engines (devices, precision)."""


def digest(job: JobRow, engines: dict[str, EngineInfo] | None = None) -> str:
    """golf.engine.report.digest of the job: `golf eval --json` on the same inputs gives it too."""
    params = {p: job.plans[p].params.model_dump(mode="json") for p in job.protocols}
    precision = None
    if engines is not None:
        precision = {p: engines[p].precision for p in job.protocols if p in engines}
    return report_digest(job.artifact, job.dataset_sha256, params, precision)


def declared_code(store: Store, job_id: str, artifact: ArtifactSummary) -> int | None:
    """The code bytes the job was submitted with (`--code FILE`), else the artifact's own
    declaration (its packer's or import-pg's --code-bytes), else None: not declared."""
    declared = (store.board_info([job_id]).get(job_id) or {}).get("code_bytes")
    if declared is not None:
        return int(declared)
    return artifact.code_bytes or None


def build_report(
    store: Store,
    job_id: str,
    environment: dict[str, Any],
    byte_source: str = "sentencepiece-luts",
) -> dict[str, Any]:
    """The report of a job whose shards are all done; IncompleteJob unless Σ tokens = plan.
    `byte_source` names what the workers counted bytes with (the dataset's).

    Each protocol reports the engine its shards' workers ran (stored with each shard); one
    whose shards ran on different engines has no single, reproducible number and fails.
    """
    job = store.job(job_id)
    assert job is not None
    elapsed: dict[str, float] = {}
    audits: dict[str, dict[str, Any]] = {}  # from the shard that ran the protocol's audit
    for shard in store.shards(job_id):
        elapsed[shard.protocol] = elapsed.get(shard.protocol, 0.0) + shard.elapsed_s
        if shard.audit is not None:
            audits[shard.protocol] = json.loads(shard.audit)
    artifact = store.artifact(job.artifact)
    assert artifact is not None
    own_flags = artifact.flags()
    reports = []
    wall = store.wall_seconds(job_id)
    ran: dict[str, EngineInfo] = {}
    for protocol in job.protocols:
        plan = job.plans[protocol]
        engines = store.engines(job_id, protocol)
        if len(engines) > 1:
            raise MixedEngines(f"{protocol}: shards ran on different engines: {engines}")
        ran[protocol] = _engine(plan.params, engines[0] if engines else None, environment)
        records = store.verified_windows(job_id, protocol)
        tokens = sum(r.tokens for r in records)
        if len(records) != plan.windows or tokens != plan.scored_tokens:
            raise IncompleteJob(
                f"{protocol}: stored {len(records)} windows and {tokens} tokens, the plan has "
                f"{plan.windows} windows and {plan.scored_tokens} tokens"
            )
        reports.append(
            make_report(
                protocol,
                records,
                plan.params,
                audit=audits.get(protocol),
                elapsed_s=elapsed.get(protocol, 0.0),
                artifact_sha256=job.artifact,
                dataset_sha256=job.dataset_sha256,
                engine=ran[protocol],
                flags=[*own_flags, *protocol_flags([protocol])],  # as golf eval's reports
                windows_total=plan.windows_total,
                wall_s=wall.get(protocol),
                byte_source=byte_source,
            )
        )
    first = reports[0].val_bpb
    dumped = [r.model_dump(mode="json") for r in reports]
    comparable, _ = scored_alike({"reports": dumped})
    return {
        "job": job_id,
        "reports": dumped,
        "table": [
            {
                "protocol": r.protocol,
                "val_bpb": r.val_bpb,
                "delta_bpb": r.val_bpb - first if comparable else None,
            }
            for r in reports
        ],
        "artifact": {
            "id": job.artifact,
            **size_block(artifact.artifact_bytes, declared_code(store, job_id, artifact)),
            "flags": [f.model_dump() for f in own_flags],
        },
        "flags": [
            f.model_dump() for f in own_flags + protocol_flags(job.protocols) + time_flags(dumped)
        ],
        "environment": environment,
        "digest": digest(job, ran),
    }
