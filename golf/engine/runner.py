"""Local evaluation: load an artifact and a dataset, check they match, run protocols.

What `golf eval` does in-process; the service runs the same `evaluate` batches on its
workers and builds the same `ProtocolReport` from their records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from golf.data.bytes import ByteLUT, SidecarBytes
from golf.data.shards import Dataset
from golf.engine.engine import prepare
from golf.engine.evaluate import Progress, evaluate
from golf.engine.report import ProtocolReport, make_report
from golf.formats.artifact import Artifact, load_model, read_artifact
from golf.protocols.base import Scorer
from golf.spec.jobplan import plan_protocol
from golf.spec.params import EvalParams
from golf.spec.records import protocol_flags
from golf.spec.registry import get_protocol


@dataclass(frozen=True)
class EvalInputs:
    """An artifact's model and the dataset tokens it is scored on, checked to match."""

    artifact: Artifact
    dataset: Dataset
    model: Scorer
    byte_lut: ByteLUT | SidecarBytes  # the sidecar on CaseOps datasets

    @classmethod
    def load(
        cls,
        artifact_path: str,
        data_dir: str,
        tokenizer: str | None = None,
        device: str = "cpu",
    ) -> EvalInputs:
        """Read and validate both sides; MismatchError if the tokenizers differ."""
        artifact = read_artifact(artifact_path)
        dataset = Dataset.open(data_dir, tokenizer)
        dataset.check_compatible(
            artifact.metadata.tokenizer.sha256, artifact.metadata.tokenizer.vocab_size
        )
        model = load_model(artifact, device)
        return cls(artifact, dataset, model, dataset.byte_counter(artifact.config.vocab_size))


def run_protocol(
    inputs: EvalInputs,
    protocol_name: str,
    params: EvalParams,
    progress: Progress | None = None,
) -> ProtocolReport:
    """Evaluate every batch of one protocol; `elapsed_s` times the evaluation alone."""
    protocol = get_protocol(protocol_name)
    params = protocol.resolve(params)
    tokens = inputs.dataset.val_tokens(params.seq_len)
    # The whole val's window count tells a partial run. Stream protocols count from their
    # outline, as the service plans them; record modes (one process, the record's timing)
    # are not planned, so their reports fall back on max_windows (golf.spec.tables).
    planned = not protocol.sequential or (
        protocol.shardable(params) or protocol.chainable(params)  # type: ignore[attr-defined]
    )
    whole = plan_protocol(protocol.name, tokens, params) if planned else None
    model = prepare(inputs.model, params)
    started = time.perf_counter()
    records = evaluate(model, tokens, inputs.byte_lut, protocol, params, progress=progress)
    elapsed = time.perf_counter() - started
    return make_report(
        protocol.name,
        records,
        params,
        elapsed_s=elapsed,
        artifact_sha256=inputs.artifact.sha256,
        dataset_sha256=inputs.dataset.sha256,
        engine=model.info(),
        flags=[
            *(f for f in inputs.artifact.summary().flags()),
            *protocol_flags([protocol.name]),
        ],
        byte_source=inputs.byte_lut.source,
        windows_total=whole.windows_total if whole is not None else None,
        wall_s=elapsed,
    )
