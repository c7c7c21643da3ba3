"""Regenerate docs/COVERAGE.md: every record folder of the official board, supported or not.

    PYTHONPATH=$PWD .venv/bin/python scripts/coverage.py \
        [--official /work/pg/official/records/track_10min_16mb] [--out docs/COVERAGE.md]

A folder is *supported* when it has a golden fixture whose checks golf reproduces
(`tests/fixtures/records/<folder>/result.json`, written by scripts/board_fixtures.py and
re-checked by tests/test_board_golden.py); the row shows the record's printed val_bpb, golf's
and |Δ| per protocol. Any other folder gets the first reason found, read from the folder
without running it: no script, the family (golf.formats.board's reading of its MLP, and
whether the architecture registry holds it), the artifact format its code writes (the
compressors and containers golf.formats reads), or "no golden fixture yet". Families
registered by other modules and fixtures added later appear without changing this script.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

from golf.formats.artifact import ArtifactError
from golf.models.registry import ARCHITECTURES
from golf.spec.errors import GolfError

PIN = "4908dc46f21ed3fdd08d2fdca285deb2194b9599"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OFFICIAL = Path("/work/pg/official/records/track_10min_16mb")
FIXTURES = ROOT / "tests" / "fixtures" / "records"

# What a record's code writes, by the names it uses; the ones golf.formats cannot read yet
# (none now: the ternary record's base-3 packing is golf.formats.ternary).
UNREAD_FORMATS: dict[str, re.Pattern[str]] = {}
# Identifiers of late-board model features no registered family implements (yet).
LATE_FEATURES = {
    "num_loops": "looped blocks",
    "parallel_start": "parallel residual lanes",
    "recur": "depth recurrence",
    "qo_bank": "parameter banks",
    "lqer": "LQER factors",
    "caseops": "CaseOps byte sidecar",
    "varlen": "document-bounded attention",
}
TTT = re.compile(r"\bttt\b|_ttt|TTT_", re.IGNORECASE)


def family(folder: Path) -> str | None:
    """The registered family golf.formats reads `folder`'s code as, if any."""
    from golf.formats.board import _arch
    from golf.formats.families import family_of
    from golf.record import read_record

    try:
        rec = read_record(folder)
        code = rec.source.code if rec.source is not None else ""
        arch = family_of(code) or _arch(rec.tree())
    except GolfError:
        return None
    return arch if arch in ARCHITECTURES else None


def diagnose(folder: Path) -> str:
    """Why a folder without a golden fixture is not supported (first reason found)."""
    from golf.formats.board import _arch
    from golf.record import RecordError, read_record

    try:
        rec = read_record(folder)
        tree = rec.tree()
    except RecordError as e:
        return f"no readable code ({e})"
    code = rec.source.code if rec.source is not None else ""
    for what, pattern in UNREAD_FORMATS.items():
        if pattern.search(code):
            return f"format: {what} not read yet"
    try:
        arch = _arch(tree)
    except (ArtifactError, GolfError) as e:
        return f"family: {e}"
    if arch not in ARCHITECTURES:
        return f"family {arch} not registered"
    extra = [what for marker, what in LATE_FEATURES.items() if marker in code.lower()]
    if extra:
        return f"{arch} MLP with {', '.join(extra)}: not in golf's families yet"
    return f"family {arch}; no golden fixture yet"


def rows(official: Path) -> list[dict]:
    out = []
    for folder in sorted(p for p in official.iterdir() if p.is_dir()):
        result = FIXTURES / folder.name / "result.json"
        row: dict = {"folder": folder.name, "checks": [], "reason": ""}
        code = " ".join(p.read_text(errors="replace") for p in folder.glob("train_gpt*.py"))
        row["ttt"] = bool(TTT.search(folder.name)) or any(
            f in code for f in ("eval_val_sliding_ttt", "eval_val_ttt")
        )
        if result.exists():
            row["checks"] = json.loads(result.read_text())["checks"]
            facts = json.loads((FIXTURES / folder.name / "facts.json").read_text())
            row["arch"] = facts["arch"]
            row["format"] = row["checks"][0]["format"] if row["checks"] else ""
        elif (FIXTURES / folder.name / "record.json").exists() and (arch := family(folder)):
            row["family_only"] = arch  # a family helper's fixture, checked by its own tests
        elif (FIXTURES / folder.name / "unsupported.json").exists():
            why = json.loads((FIXTURES / folder.name / "unsupported.json").read_text())
            row["reason"] = f"golden fixture refused: {why['error']}"
        else:
            row["reason"] = diagnose(folder)
        out.append(row)
    return out


def render(table: list[dict], official: Path) -> str:
    supported = [r for r in table if r["checks"]]
    by_family = [r for r in table if r.get("family_only")]
    checks = [c for r in supported for c in r["checks"]]
    worst = max((c["abs_delta"] for c in checks), default=0.0)
    lines = [
        "# Coverage of the official board",
        "",
        f"Every folder of `records/track_10min_16mb/` of openai/parameter-golf at `{PIN}`.",
        "Regenerate with `PYTHONPATH=$PWD .venv/bin/python scripts/coverage.py` (fixtures:",
        "`scripts/record_harness/run.py` then `scripts/board_fixtures.py`).",
        "",
        "A folder is **supported** when its golden fixture — a tiny artifact written by the "
        "record's own code, and the numbers that code printed (CPU, fp32) — is reproduced by "
        "`golf import` + `golf eval` within 1e-5 (`tests/test_board_golden.py`). TTT numbers are "
        "the TTT protocols' issue; for TTT rows the pre-TTT numbers are checked.",
        "",
        "The fixtures are imported as a user would: `golf import RECORD_DIR --artifact F "
        "--set KEY=VALUE …` with the environment the harness ran the record under. For a real "
        "artifact the same holds: a record whose run set variables its README or log states "
        "but its code does not default to (2026-03-21's ROPE_DIMS=16, LN_SCALE=1, "
        "XSA_LAST_N=4) needs them as `--set`, since its code defaults say otherwise.",
        "",
        f"- folders: {len(table)}",
        f"- supported (golden fixture reproduced here): {len(supported)}",
        f"- golden fixture of a registered family, checked by that family's tests "
        f"(tests/test_record_families.py, tests/test_ttt*.py): {len(by_family)}",
        f"- checks: {len(checks)} (plain {sum(c['protocol'] == 'plain' for c in checks)}, "
        f"sliding {sum(c['protocol'] == 'sliding' for c in checks)}); worst |Δ val_bpb| "
        f"{worst:.1e}",
        f"- architecture registry: {', '.join(sorted(ARCHITECTURES))}",
        "",
        "| folder | status | family | format | protocol / plan | record val_bpb "
        "| golf val_bpb | abs Δ |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in table:
        ttt = " (TTT row: pre-TTT checked)" if r["ttt"] and r["checks"] else ""
        if r.get("family_only"):
            lines.append(
                f"| {r['folder']} | golden fixture (its family's tests) | {r['family_only']} "
                "| | | | | |"
            )
            continue
        if not r["checks"]:
            lines.append(f"| {r['folder']} | not supported: {r['reason']} | | | | | | |")
            continue
        for i, c in enumerate(r["checks"]):
            head = (
                f"| {r['folder']} | supported{ttt} | {r['arch']} | {c['format']} "
                if i == 0
                else "| | | | "
            )
            how = (
                f" (doc-bounded, L {c['seq_len']}, cut every {c['doc_max_len']})"
                if c.get("doc_max_len")
                else " (doc-bounded)"
                if c.get("doc_bounded")
                else ""
            )
            lines.append(
                f"{head}| {c['protocol']} / {c['plan']}{how} | {c['record_val_bpb']:.8f} | "
                f"{c['golf_val_bpb']:.8f} | {c['abs_delta']:.1e} |"
            )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, default=DEFAULT_OFFICIAL)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "COVERAGE.md")
    args = parser.parse_args()
    head = subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if head and head != PIN:
        print(f"warning: {args.official} is at {head}, the table names {PIN}")
    args.out.write_text(render(rows(args.official), args.official))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
