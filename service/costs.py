"""What a job may ask of the workers, decided at submission from its plan.

Parameters that are legal for `golf eval` on one's own machine can still be hostile on
a shared service (seq_len 1 makes a million tiny windows, 10,000 SLOT steps or a
4,096-window batch pin a GPU). Each rule names its limit in the 422 it raises; the
owner's budget over queued and running jobs is enforced by the store (429).
"""

from __future__ import annotations

from golf.spec.jobplan import JobPlan, batch_bytes
from golf.spec.params import EvalParams
from golf.spec.records import ArtifactSummary
from golf.spec.registry import get_protocol
from service.errors import http_error
from service.settings import Settings

MAX_WINDOWS = 10**9
"""Largest `max_windows` accepted (FineWeb val has about 6.5e5 windows at stride 96)."""


def check_params(params: EvalParams, protocols: list[str], s: Settings) -> None:
    """422 naming the first bound the parameters break; cheap, so it runs before planning."""
    if params.max_windows is not None and params.max_windows > MAX_WINDOWS:
        raise http_error(
            422, f"max_windows {params.max_windows} exceeds this service's maximum {MAX_WINDOWS}"
        )
    if params.seq_len < s.min_seq_len:
        raise http_error(
            422, f"seq_len {params.seq_len} is below this service's minimum {s.min_seq_len}"
        )
    for name in protocols:
        stride = get_protocol(name).resolve(params).stride
        if stride is not None and stride < s.min_stride:
            raise http_error(
                422, f"{name}: stride {stride} is below this service's minimum {s.min_stride}"
            )
    if params.slot_steps > s.max_slot_steps:
        raise http_error(
            422, f"slot_steps {params.slot_steps} exceeds this service's maximum {s.max_slot_steps}"
        )


def check_plan(plan: JobPlan, artifact: ArtifactSummary, s: Settings) -> None:
    """422 when one batch would not fit a worker or the whole job costs too much."""
    cfg = artifact.config
    for protocol in plan.protocols:
        need = batch_bytes(
            protocol.params,
            model_dim=cfg["model_dim"],
            num_layers=cfg["num_layers"],
            num_heads=cfg["num_heads"],
            vocab_size=cfg["vocab_size"],
            protocol=protocol.protocol,
        )
        if need > s.max_batch_bytes:
            raise http_error(
                422,
                f"{protocol.protocol}: a batch of {protocol.params.batch_windows} windows needs "
                f"about {need / 2**30:.1f} GiB, over the workers' {s.max_batch_bytes / 2**30:.1f} "
                f"GiB (max_batch_bytes); lower batch_windows",
            )
    if plan.cost > s.max_job_cost:
        raise http_error(
            422,
            f"job cost {plan.cost:.3g} window-tokens exceeds this service's maximum "
            f"{s.max_job_cost:.3g} (max_job_cost): fewer protocols, a larger stride or max_windows",
        )
