"""A review as markdown (for a PR comment) or JSON, and the board as one table."""

from __future__ import annotations

import json
from typing import Any

from golf.review.findings import SEVERITIES, Review

ANOMALY_SEVERITIES = ("fail", "flag", "warn")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(x: float | None, fmt: str = "{:.8f}") -> str:
    return "—" if x is None else fmt.format(x)


def render_json(review: Review) -> str:
    return json.dumps(review.as_dict(), indent=2, default=str)


def render_markdown(review: Review) -> str:
    lines = [f"## golf review: `{review.folder}`", "", f"**Verdict: {_cell(review.verdict)}**", ""]
    verdicts = ", ".join(
        f"{c} **{review.verdict_of(c)}**" for c in ("size", "claims", "time", "legality")
    )
    lines += [verdicts, ""]
    if review.claimed_bpb is not None or review.claimed_loss is not None:
        lines += [
            f"Claimed: val_bpb {review.claimed_bpb}, val_loss {review.claimed_loss}, "
            f"val_bpb_std {review.claimed_std}; {len(review.seeds)} seeds",
            "",
        ]
    lines += ["### Findings", "", "| severity | check | finding | evidence |", "|---|---|---|---|"]
    order = sorted(review.findings, key=lambda f: SEVERITIES.index(f.severity))
    for f in order:
        ev = "<br>".join(_cell(e) for e in f.evidence[:4])
        msg = _cell(f.message) + (f" — {_cell(f.condition)}" if f.condition else "")
        lines.append(f"| {f.severity} | {f.check} | `{f.code}`: {msg} | {ev} |")
    lines += [
        "",
        "### Per seed",
        "",
        "| seed | log | claimed bpb | logged bpb | kind | val_loss | model bytes | code bytes "
        "| total bytes | train s | eval s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in review.seeds:
        lines.append(
            f"| {s.seed} | {_cell(s.log or '—')} | {_num(s.claimed_bpb, '{}')} | "
            f"{_num(s.logged_bpb)} | {s.kind or '—'} | {_num(s.logged_loss)} | "
            f"{_num(s.model_bytes, '{:,}')} | {_num(s.code_bytes, '{:,}')} | "
            f"{_num(s.total_bytes, '{:,}')} | {_num(s.train_s, '{:.1f}')} | "
            f"{_num(s.eval_s, '{:.1f}')} |"
        )
    if review.significance is not None:
        sig = review.significance
        lines += ["", "### Significance", ""]
        lines.append(f"Against `{_cell(sig.get('baseline'))}`: **{sig.get('verdict')}**")
        parts = []
        if "improvement_nats" in sig:
            parts.append(f"improvement {sig['improvement_nats']:+.5f} nats")
        if "improvement_bpb" in sig:
            parts.append(f"{sig['improvement_bpb']:+.5f} bpb")
        if "p" in sig:
            parts.append(
                f"one-sided Welch t = {sig['t']:.3f}, dof {sig['dof']:.1f}, "
                f"p = {sig['p']:.3g} for H0: improvement ≤ 0.005 nats (verdict at p < 0.01)"
            )
        if parts:
            lines += ["", "; ".join(parts)]
        for note in sig.get("notes", []):
            lines.append(f"- {note}")
    if review.unknown_fields:
        keys = ", ".join(f"`{k}`" for k in sorted(review.unknown_fields))
        lines += ["", f"Other submission.json fields (kept, not checked): {keys}"]
    return "\n".join(lines) + "\n"


def board_markdown(reviews: list[Review]) -> str:
    """One row per folder: claimed bpb, seeds, size/time/legality verdicts, significance
    against the previous row, anomalies (the codes of fail/flag/warn findings)."""
    lines = [
        "| folder | claimed bpb | seeds | size | time | legality | vs previous | anomalies |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reviews:
        sig = r.significance or {}
        vs = sig.get("verdict", "—")
        if "p" in sig:
            vs = f"{vs} (Δ {sig['improvement_nats']:+.4f} nats, p={sig['p']:.2g})"
        elif "improvement_nats" in sig:
            vs = f"{vs} (Δ {sig['improvement_nats']:+.4f} nats)"
        anomalies = [
            f.code
            for f in r.findings
            if f.severity in ANOMALY_SEVERITIES and f.check != "significance"
        ]
        seen: dict[str, int] = {}
        for a in anomalies:
            seen[a] = seen.get(a, 0) + 1
        text = ", ".join(f"{a}×{n}" if n > 1 else a for a, n in seen.items()) or "—"
        n_logged = sum(1 for s in r.seeds if s.logged_bpb is not None)
        lines.append(
            f"| {_cell(r.folder)} | {_num(r.claimed_bpb, '{}')} | {n_logged}/{len(r.seeds)} | "
            f"{r.verdict_of('size')} | {r.verdict_of('time')} | {r.verdict_of('legality')} | "
            f"{_cell(vs)} | {_cell(text)} |"
        )
    return "\n".join(lines) + "\n"


def board_json(reviews: list[Review]) -> str:
    return json.dumps([r.as_dict() for r in reviews], indent=2, default=str)
