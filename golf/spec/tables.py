"""Report tables as plain rows and markdown: shared by `golf eval` and the client views.

Pure functions of the report JSON: a job's report (`GET /v1/jobs/{id}/report`) or the
document `golf eval --json` prints (the same `reports`, `artifact`, `flags`,
`environment` and `digest`, without `job`). Torch-free, so the client CLI imports it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Report = dict[str, Any]

REPORT_COLUMNS = (
    "protocol", "val_bpb", "95% CI", "Δ bpb", "val_loss", "tokens", "windows", "wall s"
)  # fmt: skip
CI_NOTE = "95% CI: within-run (bootstrap over this run's windows), not seed variance"


def flag_codes(report: Report, protocol: str) -> list[str]:
    """Codes of the flags that apply to one protocol: the artifact's and the protocol's own.

    A flag is `{"code", "protocol"}`; `protocol` is null for the artifact's flags.
    """
    flags = report.get("flags") or []
    return [f["code"] for f in flags if f.get("protocol") in (None, protocol)]


def is_partial(r: dict[str, Any]) -> bool:
    """Whether one protocol report scored fewer windows than the whole val's plan: its
    `partial` (from the counts); a report made before the counts were kept is partial
    when max_windows was set, since nothing says it covered the whole val."""
    if r.get("windows_total") is not None:
        return bool(r.get("partial"))
    return r["params"].get("max_windows") is not None


def partial_protocols(report: Report) -> list[str]:
    return [r["protocol"] for r in report["reports"] if is_partial(r)]


def scored_alike(report: Report) -> tuple[bool, list[str]]:
    """Whether the protocols' val_bpb can be set against each other (Δ): they scored the
    same targets of the whole val; and the notes a view of the report must carry
    (partial run, no Δ). A partial run gets no Δ: its first windows are no sample of
    the val, so a difference there says nothing of the whole."""
    reports = report["reports"]
    partial = [r for r in reports if is_partial(r)]
    same = len({r["tokens"] for r in reports}) == 1 and not partial
    notes = []
    if partial:
        cut = "/".join(
            dict.fromkeys(
                f"{r['windows']:,} of {r['windows_total']:,}"
                if r.get("windows_total")
                else f"max_windows {r['params'].get('max_windows')}"
                for r in partial
            )
        )
        notes.append(
            f"PARTIAL RUN: scored only the first windows ({cut}); these are not val_bpb "
            "of the whole validation set"
        )
    if not same and len(reports) > 1:
        why = "a partial run" if partial else "the protocols scored different targets"
        notes.append(f"no Δ: {why} (see tokens)")
    return same, notes


def wall_seconds(r: dict[str, Any]) -> float:
    """The protocol's wall-clock seconds (`wall_s`); reports made before it was recorded
    have only `elapsed_s` (locally the same; on the service the sum of shard seconds)."""
    return r["wall_s"] if r.get("wall_s") is not None else r["elapsed_s"]


def hardware_line(report: Report) -> str:
    """`on NVIDIA H100 80GB HBM3 (8×H100 ≈ 12.3 s)`: where each protocol's time was taken,
    and the projection to the rules' 8×H100 where the hardware allows one."""
    from golf.spec.evaltime import EVAL_LIMIT_S

    devices = {
        (r.get("engine") or {}).get("device_name") or "unknown hardware" for r in report["reports"]
    }
    line = "eval on " + " / ".join(sorted(devices))
    projected = {r["protocol"]: r.get("projected_8xh100_s") for r in report["reports"]}
    if any(v is not None for v in projected.values()):
        parts = [
            f"{p} {v:.1f} s" + (" OVER 600 s" if v > EVAL_LIMIT_S else "")
            for p, v in projected.items()
            if v is not None
        ]
        line += f" (8×H100 ≈ {', '.join(parts)})"
    return line


def ci_words(r: dict[str, Any]) -> str:
    """`[1.2301, 1.2355]` (within-run 95 % CI of val_bpb), or — when not recorded."""
    ci = r.get("ci95")
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "—"


def report_rows(report: Report) -> list[list[str]]:
    """REPORT_COLUMNS + flags of each protocol, as strings; Δ is to the first protocol,
    and "—" when the protocols scored different targets."""
    first = report["reports"][0]["val_bpb"]
    comparable, _ = scored_alike(report)
    return [
        [
            r["protocol"],
            f"{r['val_bpb']:.6f}",
            ci_words(r),
            f"{r['val_bpb'] - first:+.6f}" if comparable else "—",
            f"{r['val_loss']:.6f}",
            f"{r['tokens']:,}",
            f"{r['windows']:,}",
            f"{wall_seconds(r):.2f}",
            ", ".join(flag_codes(report, r["protocol"])),
        ]
        for r in report["reports"]
    ]


def _same_or_each(values: dict[str, Any]) -> str:
    """`64` when every protocol has the same value, else `sliding 32 / slot 64`."""
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return " / ".join(f"{p} {v}" for p, v in values.items())


def params_line(report: Report) -> str:
    """seq_len, stride per protocol, SLOT steps (if a SLOT protocol ran), max_windows."""
    params = {r["protocol"]: r["params"] for r in report["reports"]}
    parts = [f"seq_len {_same_or_each({p: v['seq_len'] for p, v in params.items()})}"]
    parts.append("stride " + " / ".join(f"{p} {v['stride']}" for p, v in params.items()))
    slot = {p: v["slot_steps"] for p, v in params.items() if p.startswith("slot")}
    if slot:
        parts.append(f"slot steps {_same_or_each(slot)}")
    capped = {p: v.get("max_windows") for p, v in params.items()}
    if any(v is not None for v in capped.values()):
        parts.append(f"max_windows {_same_or_each(capped)}")
    return ", ".join(parts)


def md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def md_table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub-flavoured markdown table's lines; `align` is left or right per column."""
    rule = "|" + "|".join("---:" if a == "right" else "---" for a in align) + "|"
    return [md_row(header), rule, *(md_row(r) for r in rows)]


def artifact_words(art: dict[str, Any]) -> str:
    """`(123,456 bytes, fits)`, or what is known of it; says when no code size was declared."""
    from golf.spec.records import size_words

    return f"({size_words(art)})"


def report_markdown(report: Report, dataset: str | None = None) -> str:
    """A GitHub-flavoured markdown table and one provenance line, to paste into a PR."""
    art = report.get("artifact") or {"id": report["reports"][0].get("artifact_sha256", "")}
    header = [*REPORT_COLUMNS, "flags"]
    align = ["left", *["right"] * (len(REPORT_COLUMNS) - 1), "left"]
    rows = [
        [*r[:-1], ", ".join(f"`{f}`" for f in flag_codes(report, r[0]))]
        for r in report_rows(report)
    ]
    ds = report["reports"][0].get("dataset_sha256", "")[:12]
    line = [f"job `{report['job']}`"] if report.get("job") else ["local `golf eval`"]
    line += [
        f"artifact `{art['id'][:12]}` {artifact_words(art)}",
        f"dataset `{dataset}` (`{ds}`)" if dataset else f"dataset `{ds}`",
        params_line(report),
        hardware_line(report),
    ]
    if report.get("digest"):
        line.append(f"digest `{report['digest'][:16]}`")
    _, notes = scored_alike(report)
    warn = [f"> **{n.split(':', 1)[0]}**:{n.split(':', 1)[1]}" for n in notes]
    body = [*md_table(header, align, rows), "", " · ".join(line) + "  ", CI_NOTE]
    return "\n".join([*warn, *([""] if warn else []), *body]) + "\n"
