"""Protocol reports: the one JSON shape in which every layer states a val_bpb.

`golf eval --json`, the service and the workers' merge all produce `ProtocolReport`s,
so a number reported anywhere carries the parameters, artifact and dataset it was
measured with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from torch import nn

from golf.artifact import Artifact, load_model, read_artifact
from golf.bytes import ByteLUT
from golf.data import Dataset
from golf.evaluate import Progress, WindowRecord, evaluate, summarize
from golf.protocols import EvalParams, Protocol, get_protocol


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


def resolve_params(protocol: Protocol, params: EvalParams) -> EvalParams:
    """`params` with the stride this protocol actually uses filled in.

    `plain` always scores non-overlapping chunks, so a stride meant for the overlapping
    protocols of the same run does not apply to it.
    """
    if protocol.name == "plain":
        return params.model_copy(update={"stride": params.seq_len})
    if params.stride is None:
        return params.model_copy(update={"stride": protocol.default_stride(params.seq_len)})
    return params


@dataclass(frozen=True)
class EvalInputs:
    """An artifact's model and the dataset tokens it is scored on, checked to match."""

    artifact: Artifact
    dataset: Dataset
    model: nn.Module
    byte_lut: ByteLUT

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
        return cls(artifact, dataset, model, dataset.byte_lut(artifact.config.vocab_size))


def n_batches(protocol: Protocol, n_tokens: int, params: EvalParams) -> int:
    """How many batches the protocol's plan over `n_tokens` val tokens has."""
    return protocol.plan(n_tokens - 1, params).n_batches(params.batch_windows)


def run_protocol(
    inputs: EvalInputs,
    protocol_name: str,
    params: EvalParams,
    progress: Progress | None = None,
) -> ProtocolReport:
    """Evaluate every batch of one protocol; `elapsed_s` times the evaluation alone."""
    protocol = get_protocol(protocol_name)
    params = resolve_params(protocol, params)
    tokens = inputs.dataset.val_tokens(params.seq_len)
    started = time.perf_counter()
    records = evaluate(inputs.model, tokens, inputs.byte_lut, protocol, params, progress=progress)
    elapsed = time.perf_counter() - started
    return make_report(
        protocol.name,
        records,
        params,
        elapsed_s=elapsed,
        artifact_sha256=inputs.artifact.sha256,
        dataset_sha256=inputs.dataset.sha256,
    )


def make_report(
    protocol: str,
    records: Sequence[WindowRecord],
    params: EvalParams,
    *,
    elapsed_s: float,
    artifact_sha256: str,
    dataset_sha256: str,
) -> ProtocolReport:
    """A report from per-window records, however and wherever they were computed."""
    return ProtocolReport(
        protocol=protocol,
        **summarize(records),
        elapsed_s=elapsed_s,
        params=params,
        artifact_sha256=artifact_sha256,
        dataset_sha256=dataset_sha256,
    )
