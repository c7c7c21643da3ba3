"""Is a record's improvement over a baseline real? The rules' bar: at least 0.005 nats
(val_loss per token) better, at p < 0.01 over the runs.

One-sided Welch test of H0: improvement ≤ 0.005 nats, with improvement = mean(baseline
val_loss) − mean(candidate val_loss) over per-seed values: t = (Δ − 0.005) / √(s²_b/n_b +
s²_c/n_c), Welch–Satterthwaite dof, p = P(T ≥ t). The t distribution is golf.spec.stats'
(`t_upper_p`; the rule's margin and alpha are `golf.spec.stats`' too, as `golf compare
--rule record` uses them). When the baseline is only a mean
(`--against-loss`, `--against-bpb`, or a baseline folder with one seed), its variance is
unknown: the test becomes one-sample over the candidate's seeds (baseline taken as exact),
which is said in the result. `--against-bpb X` converts X to nats with the candidate's own
nats-per-bpb ratio (mean val_loss / mean val_bpb: same tokenizer assumed), also said.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from golf.spec.stats import RECORD_ALPHA as ALPHA
from golf.spec.stats import RECORD_MARGIN_NATS as MIN_NATS
from golf.spec.stats import mean_std, t_upper_p


def significance(
    cand_loss: Sequence[float],
    cand_bpb: Sequence[float],
    base_loss: Sequence[float] | None = None,
    base_bpb: Sequence[float] | None = None,
    against_loss: float | None = None,
    against_bpb: float | None = None,
    baseline: str = "baseline",
) -> dict[str, Any]:
    """The test above as a JSON-ready dict: improvement (nats, bpb), t, dof, p, verdict
    (`significant`, `not significant`, `untestable`) and `notes` on what was assumed."""
    notes: list[str] = []
    out: dict[str, Any] = {
        "baseline": baseline,
        "threshold_nats": MIN_NATS,
        "alpha": ALPHA,
        "n_candidate": len(cand_loss),
        "notes": notes,
    }
    if not cand_loss:
        out["verdict"] = "untestable"
        notes.append("the candidate has no per-seed val_loss in its logs")
        return out
    mc, sc = mean_std(cand_loss)
    mcb = math.fsum(cand_bpb) / len(cand_bpb) if cand_bpb else None
    if base_loss:
        mb, sb = mean_std(base_loss)
        mbb = math.fsum(base_bpb) / len(base_bpb) if base_bpb else None
        out["n_baseline"] = len(base_loss)
    elif against_loss is not None:
        mb, sb, mbb = against_loss, None, None
        notes.append("baseline given as a mean val_loss: its spread is unknown")
    elif against_bpb is not None:
        if mcb is None or mcb == 0:
            out["verdict"] = "untestable"
            notes.append("cannot convert the baseline bpb to nats without the candidate's bpb")
            return out
        ratio = mc / mcb
        mb, sb, mbb = against_bpb * ratio, None, against_bpb
        notes.append(
            f"baseline given as a mean val_bpb, converted to {mb:.6f} nats with the "
            f"candidate's nats/bpb ratio {ratio:.6f} (same tokenizer assumed); its spread "
            "is unknown"
        )
    else:
        out["verdict"] = "untestable"
        notes.append("no baseline")
        return out
    out["improvement_nats"] = mb - mc
    if mbb is not None and mcb is not None:
        out["improvement_bpb"] = mbb - mcb
    delta = mb - mc
    var = 0.0
    dof_terms: list[tuple[float, int]] = []
    if sc is not None:
        var += sc * sc / len(cand_loss)
        dof_terms.append((sc * sc / len(cand_loss), len(cand_loss)))
    else:
        notes.append("one candidate seed: its spread is unknown")
    if base_loss:
        if sb is not None:
            var += sb * sb / len(base_loss)
            dof_terms.append((sb * sb / len(base_loss), len(base_loss)))
        else:
            notes.append("one baseline seed: its spread is unknown; one-sample test")
    if var == 0 or not dof_terms:
        out["verdict"] = "untestable"
        notes.append("no spread to test against (fewer than 2 seeds on each side)")
        return out
    dof = var * var / math.fsum(v * v / (n - 1) for v, n in dof_terms)
    t = (delta - MIN_NATS) / math.sqrt(var)
    p = t_upper_p(t, dof)
    out.update(
        {"t": t, "dof": dof, "p": p, "verdict": "significant" if p < ALPHA else "not significant"}
    )
    return out
