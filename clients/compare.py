"""What `golf compare` computes: sides (jobs, report files, saved evals), Δ val_bpb with a
paired-bootstrap CI per protocol, and seed groups (mean ± std, Welch's t, pooled bootstrap).

A side is a job id (its report and windows come from the service), a JSON file (a job's
report from `golf report -f json`, or `golf eval --json`'s document: no windows, so no
CI), or a folder `golf eval --save` wrote (report.json + windows.jsonl). The statistics
are golf.spec.stats', imported only when a CI is computed (they need numpy).

Seed groups: each group's val_bpb per protocol is the mean ± sample std (ddof 1) of its
seeds' values. Against the first group: Welch's t-test over the seed values, and a
bootstrap of the pooled windows (all seeds' windows of a group as one run), paired by
(seed index, window) when both groups have as many seeds and each seed pair has the same
plan, otherwise resampling each group's pool independently (unpaired).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golf.spec.console import fail
from golf.spec.errors import ConfigError

Report = dict[str, Any]
WindowsOf = Callable[[str], "list[dict[str, Any]] | None"]


@dataclass
class Side:
    """One run: a name (A, B, … or a group's `name[i]`), where it came from, its report
    (in a job report's shape) and, per protocol, its window records when they are known."""

    name: str
    label: str
    report: Report
    windows_of: WindowsOf
    dataset: str | None = None
    _windows: dict[str, Any] = field(default_factory=dict)

    def protocol(self, protocol: str) -> dict[str, Any] | None:
        return next((r for r in self.report["reports"] if r["protocol"] == protocol), None)

    def windows(self, protocol: str) -> Any:
        """golf.spec.stats.Windows of a protocol, or None when this side has no records."""
        if protocol not in self._windows:
            from golf.spec.stats import Windows

            records = self.windows_of(protocol)
            self._windows[protocol] = Windows.of(records) if records else None
        return self._windows[protocol]


def side_names(n: int) -> list[str]:
    letters = string.ascii_uppercase
    return [letters[i] if i < 26 else f"S{i + 1}" for i in range(n)]


def normalize(doc: Report) -> Report:
    """A job's report, or `golf eval --json`'s document, in a job report's shape: `job`
    (None for a local eval) and `artifact` (what is known of it) always present."""
    first = doc["reports"][0]
    art = doc.get("artifact") or {"id": first.get("artifact_sha256", "?")}
    return {"job": None, "flags": [], **doc, "artifact": art}


def _read_json(path: Path, hint: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        fail(f"{path}: not a JSON report ({e}); {hint}")


HINT = "write one with golf report JOB -f json, golf eval --json or golf eval --save DIR"


def _is_report(doc: Any) -> bool:
    return isinstance(doc, dict) and bool(doc.get("reports")) and isinstance(doc["reports"], list)


def _saved_windows(path: Path) -> WindowsOf:
    """Records of DIR/windows.jsonl by protocol, read once on first use."""
    by_protocol: dict[str, list[dict[str, Any]]] | None = None

    def windows_of(protocol: str) -> list[dict[str, Any]] | None:
        nonlocal by_protocol
        if by_protocol is None:
            by_protocol, line_no = {}, 0
            try:
                with path.open(encoding="utf-8") as f:
                    for line_no, line in enumerate(f, 1):  # noqa: B007 (named in errors)
                        if line.strip():
                            row = json.loads(line)
                            by_protocol.setdefault(row["protocol"], []).append(row)
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"{path}, line {line_no}: bad window record: {e}") from None
        return by_protocol.get(protocol)

    return windows_of


JobLoader = Callable[[str], "tuple[Report, str | None, WindowsOf]"]


def load_side(spec: str, name: str, job: JobLoader) -> Side:
    """A job id, a report JSON file, or a folder of `golf eval --save` (see module doc);
    `job` gives a job's report, dataset name and windows (from the service)."""
    path = Path(spec)
    if path.is_dir():
        report_file = path / "report.json"
        if not report_file.is_file():
            fail(f"{spec}: a folder without report.json; write one with golf eval --save {spec}")
        doc = _read_json(report_file, HINT)
        if not _is_report(doc):
            fail(f"{report_file}: not a report; {HINT}")
        windows = path / "windows.jsonl"
        windows_of = _saved_windows(windows) if windows.is_file() else (lambda _: None)
        return Side(name, str(path), normalize(doc), windows_of, _dataset_name(doc))
    if path.is_file():
        doc = _read_json(path, HINT)
        if not _is_report(doc):
            fail(f"{spec}: not a job report; {HINT}")
        # `golf eval --save` folders all hold a report.json: name its folder too
        shown = path.name if path.name != "report.json" else f"{path.parent.name}/{path.name}"
        label = f"{doc['job']} ({shown})" if doc.get("job") else shown
        return Side(name, label, normalize(doc), lambda _: None, _dataset_name(doc))
    if spec.startswith("j_"):
        report, dataset, windows_of = job(spec)
        return Side(name, spec, normalize(report), windows_of, dataset)
    fail(f"{spec}: no such file or folder, nor a job id (j_…); list your jobs with golf jobs")


def _dataset_name(doc: Report) -> str | None:
    ds = doc.get("dataset")
    return ds.get("name") if isinstance(ds, dict) else None


# ---- sides -----------------------------------------------------------------------------


def protocols_of(sides: list[Side], only: list[str] | None = None) -> list[str]:
    """The first side's protocols, then those only the others ran; or `only`'s."""
    order: list[str] = []
    for side in sides:
        order += [r["protocol"] for r in side.report["reports"] if r["protocol"] not in order]
    return [p for p in order if not only or p in only]


def pair(a: Side, b: Side, protocol: str, resamples: int, seed: int) -> dict[str, Any]:
    """Δ = B − A of one protocol: the reported difference, and the paired-bootstrap CI when
    both sides' windows pair; otherwise `unpaired_reason` says why there is no CI."""
    ra, rb = a.protocol(protocol), b.protocol(protocol)
    row: dict[str, Any] = {
        "protocol": protocol,
        "side": b.name,
        "label": b.label,
        "val_bpb_a": ra and ra["val_bpb"],
        "val_bpb_b": rb and rb["val_bpb"],
        "delta_bpb": None,
        "ci95": None,
        "n_windows": None,
        "significant": None,
        "paired": False,
        "unpaired_reason": None,
    }
    if ra is None or rb is None:
        missing = a if ra is None else b
        row["unpaired_reason"] = f"{missing.name} did not run {protocol}"
        return row
    row["delta_bpb"] = rb["val_bpb"] - ra["val_bpb"]
    row["unpaired_reason"] = _pairing(a, b, protocol, ra, rb)
    if row["unpaired_reason"] is None:
        from golf.spec.stats import paired_bootstrap

        delta = paired_bootstrap(a.windows(protocol), b.windows(protocol), resamples, seed)
        row |= {
            "ci95": list(delta.ci95),
            "n_windows": delta.n_windows,
            "significant": delta.significant,
            "paired": True,
            "resamples": resamples,
        }
    return row


def _pairing(a: Side, b: Side, protocol: str, ra: dict[str, Any], rb: dict[str, Any]) -> str | None:
    from golf.spec.stats import pairing_problem

    for side in (a, b):
        if side.windows(protocol) is None:
            where = "a report file" if not side.label.startswith("j_") else "no stored windows"
            return (
                f"{side.name} has no per-window records ({where}; "
                "compare a job id or a golf eval --save folder)"
            )
    return pairing_problem(
        a.windows(protocol),
        b.windows(protocol),
        ra["params"],
        rb["params"],
        ra.get("dataset_sha256"),
        rb.get("dataset_sha256"),
    )


def compare_sides(
    sides: list[Side], only: list[str] | None, resamples: int, seed: int
) -> dict[str, Any]:
    """The comparison document: the sides, what differs from the first, and one row per
    protocol and later side with Δ vs the first side (`pair`)."""
    from clients.views import differences
    from golf.spec.tables import partial_protocols

    first = sides[0]
    return {
        "sides": [
            {
                "name": s.name,
                "label": s.label,
                "job": s.report.get("job"),
                "artifact": s.report["artifact"]["id"],
                "total_bytes": s.report["artifact"].get("total_bytes"),
                "verdict": s.report["artifact"].get("verdict"),
                "val_bpb": {r["protocol"]: r["val_bpb"] for r in s.report["reports"]},
                "partial": partial_protocols(s.report),
            }
            for s in sides
        ],
        "differs": {s.name: differences(first.report, s.report) for s in sides[1:]},
        "rows": [
            pair(first, side, p, resamples, seed)
            for p in protocols_of(sides, only)
            for side in sides[1:]
        ],
        "resamples": resamples,
        "seed": seed,
    }


# ---- seed groups -----------------------------------------------------------------------


@dataclass
class Group:
    name: str
    members: list[Side]


def group_summary(group: Group, protocols: list[str]) -> dict[str, Any]:
    from golf.spec.stats import mean_std

    stats = {}
    for p in protocols:
        values = [r["val_bpb"] for s in group.members if (r := s.protocol(p)) is not None]
        if values:
            mean, std = mean_std(values)
            stats[p] = {"seeds": len(values), "mean": mean, "std": std, "val_bpb": values}
    return {"name": group.name, "members": [s.label for s in group.members], "protocols": stats}


def group_test(
    a: Group, b: Group, protocol: str, resamples: int, seed: int
) -> dict[str, Any] | None:
    """B's seeds against A's under one protocol: Δ of the means, Welch's t-test, and the
    pooled-window bootstrap (paired by seed index and window when it can be)."""
    from golf.spec.stats import Windows, mean_std, paired_bootstrap, unpaired_bootstrap, welch

    va = [r["val_bpb"] for s in a.members if (r := s.protocol(protocol))]
    vb = [r["val_bpb"] for s in b.members if (r := s.protocol(protocol))]
    if not va or not vb:
        return None
    test = welch(va, vb)
    row: dict[str, Any] = {
        "protocol": protocol,
        "group": b.name,
        "vs": a.name,
        "delta_bpb": mean_std(vb)[0] - mean_std(va)[0],
        "welch": test.as_dict() if test else None,
        "bootstrap": None,
        "note": None if test else "Welch's t needs ≥ 2 seeds per group, with some spread",
    }
    if len(va) != len(a.members) or len(vb) != len(b.members):
        row["note"] = "not every seed ran this protocol: no pooled bootstrap"
        return row
    missing = [s for s in (*a.members, *b.members) if s.windows(protocol) is None]
    if missing:
        row["note"] = f"no per-window records for {missing[0].label}: no pooled bootstrap"
        return row
    pool_a = Windows.concat([s.windows(protocol) for s in a.members])
    pool_b = Windows.concat([s.windows(protocol) for s in b.members])
    why = _group_pairing(a, b, protocol)
    if why is None:
        delta = paired_bootstrap(pool_a, pool_b, resamples, seed)
    else:
        delta = unpaired_bootstrap(pool_a, pool_b, resamples, seed)
        row["note"] = f"pooled windows resampled unpaired: {why}"
    row["bootstrap"] = delta.as_dict()
    return row


def _group_pairing(a: Group, b: Group, protocol: str) -> str | None:
    """Why the groups' pooled windows cannot pair by (seed index, window), or None."""
    if len(a.members) != len(b.members):
        return f"{len(a.members)} vs {len(b.members)} seeds"
    for i, (sa, sb) in enumerate(zip(a.members, b.members, strict=True)):
        ra, rb = sa.protocol(protocol), sb.protocol(protocol)
        assert ra is not None and rb is not None
        if why := _pairing(sa, sb, protocol, ra, rb):
            return f"seed {i + 1}: {why}"
    return None


def record_row(
    a: Group, b: Group, protocol: str, margin: float, alpha: float
) -> dict[str, Any] | None:
    """Parameter Golf's record rule, B (the challenger) against A (the standing record):
    one-sided Welch test over the seeds' val_loss in nats that B improves on A by more
    than `margin` (golf.spec.stats.record_test). Partial runs are no evidence: refused."""
    from golf.spec.stats import record_test
    from golf.spec.tables import is_partial

    ra = [r for s in a.members if (r := s.protocol(protocol))]
    rb = [r for s in b.members if (r := s.protocol(protocol))]
    if not ra or not rb:
        return None
    if any(is_partial(r) for r in (*ra, *rb)):
        fail(f"--rule record: a seed of {protocol} is a partial run; records need the whole val")
    test = record_test([r["val_loss"] for r in ra], [r["val_loss"] for r in rb], margin, alpha)
    return {"protocol": protocol, "group": b.name, "vs": a.name, **test.as_dict()}


def compare_groups(
    groups: list[Group],
    only: list[str] | None,
    resamples: int,
    seed: int,
    rule: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Mean ± std per group per protocol, and each later group tested against the first;
    with `rule` (margin nats, alpha), the record rule's verdict too."""
    protocols = protocols_of([s for g in groups for s in g.members], only)
    tests = [
        t
        for p in protocols
        for g in groups[1:]
        if (t := group_test(groups[0], g, p, resamples, seed)) is not None
    ]
    doc: dict[str, Any] = {
        "groups": [group_summary(g, protocols) for g in groups],
        "tests": tests,
        "resamples": resamples,
        "seed": seed,
    }
    if rule is not None:
        doc["record"] = [
            r
            for p in protocols
            for g in groups[1:]
            if (r := record_row(groups[0], g, p, *rule)) is not None
        ]
    return doc
