"""Dynamic checks, when an artifact (and the dataset it was trained for) is given:
golf-eval's causality flip test (golf.audit.causality) on the protocol the record reports,
and a re-score of that protocol, next to the claimed per-seed numbers.

Imported only when asked for (`golf review --artifact`): it loads the engine (torch);
`golf.review` itself stays torch-free. The record's reported score kind decides the
protocol: sliding-window kinds → `sliding` (stride = the record's `eval_stride`, 64 when
it has none), roundtrip/`quantized` kinds → `plain`; TTT kinds have no golf-eval protocol
in this build and are reported as not checked, with why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from golf.review.findings import Finding, Review
from golf.spec.errors import GolfError


def protocol_for(kind: str | None) -> str | None:
    """The golf-eval protocol matching a log's score kind, or None."""
    if not kind:
        return None
    k = kind.lower()
    if "ttt" in k:
        return None
    if "sliding" in k:
        return "sliding"
    if "roundtrip" in k or k.startswith("quantized"):
        return "plain"
    return None


def dynamic_findings(
    review: Review,
    hparams: dict[str, Any],
    artifact: Path,
    data: Path,
    tokenizer: Path | None = None,
    device: str = "auto",
    samples: int = 8,
    max_windows: int | None = None,
) -> list[Finding]:
    """Causality audit and re-score of `artifact` on `data` (see the module doc)."""
    kinds = [r.kind for r in review.seeds if r.kind]
    name = protocol_for(kinds[0] if kinds else None)
    if name is None:
        return [
            Finding(
                "dynamic.protocol_unsupported",
                "dynamic",
                "info",
                f"the reported score kind {kinds[0] if kinds else None!r} has no "
                "golf-eval protocol here: causality audit and re-score not run",
            )
        ]
    from golf.audit.causality import audit
    from golf.engine.engine import pick_device
    from golf.engine.runner import EvalInputs, run_protocol
    from golf.spec.params import EvalParams
    from golf.spec.registry import get_protocol

    fields: dict[str, Any] = {"max_windows": max_windows}
    seq = hparams.get("eval_seq_len") or hparams.get("train_seq_len")
    if isinstance(seq, int) and seq > 0:
        fields["seq_len"] = seq
    stride = hparams.get("eval_stride")
    if name == "sliding" and isinstance(stride, int) and stride > 0:
        fields["stride"] = stride
    try:
        proto = get_protocol(name)
        params = proto.resolve(EvalParams(**fields))
        inputs = EvalInputs.load(str(artifact), str(data), tokenizer, pick_device(device))
        result = audit(
            inputs.model, inputs.dataset.val_tokens(params.seq_len), proto, params, windows=samples
        )
        report = run_protocol(inputs, name, params)
    except GolfError as e:
        return [Finding("dynamic.not_run", "dynamic", "warn", f"dynamic checks not run: {e}")]
    out = [
        Finding(
            "dynamic.causality",
            "dynamic",
            "pass" if result["violations"] == 0 else "fail",
            f"{name} over {result['windows_tested']} windows: {result['violations']} earlier "
            "scored targets moved when a later token was flipped",
        )
    ]
    claimed = [
        r.claimed_bpb or r.logged_bpb for r in review.seeds if (r.claimed_bpb or r.logged_bpb)
    ]
    engine = report.engine.model_dump() if hasattr(report.engine, "model_dump") else report.engine
    partial = f" (first {max_windows} windows)" if max_windows else ""
    out.append(
        Finding(
            "dynamic.rescore",
            "dynamic",
            "info",
            f"golf-eval {name}{partial}: val_bpb {report.val_bpb:.8f}; claimed per seed: "
            + ", ".join(f"{c:.8f}" for c in claimed)
            + f"; engine {engine}",
        )
    )
    return out
