"""`golf review`: a record folder checked against the rules, automatically — torch-free.

    from golf.review import review_folder, board
    review = review_folder(folder, against=other_folder)   # a Review (findings.py)
    render_markdown(review) / review.as_dict()             # for a PR comment / JSON

Checks (each a named Finding with evidence, `file:line: text`): size (code + model ≤
16,000,000 bytes per seed, from the logs and from submission.json, and whether they
agree), claims (submission mean/std/per-seed against the log lines, with tolerances
from the claims' own rounding; the seed count), time (train and eval ≤ 600 s per seed),
significance (`against`: one-sided Welch test of an improvement > 0.005 nats at
p < 0.01), static legality heuristics (legality.py) over the decoded code and the
folder's own modules it imports, and — only with an artifact — the dynamic checks of
dynamic.py (imported then, since they need torch).

A review never raises for a bad file in the folder: the file's one-line error becomes a
`files.unreadable` finding. `review_folder` raises RecordError only when the folder
itself cannot be read.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from golf.record import Record, RecordError, read_record
from golf.record.files import read_text
from golf.record.parse import parse_python
from golf.record.source import MAX_SUBMITTED_BYTES
from golf.review.checks import check_claims, check_size, check_time, per_seed_values, seed_rows
from golf.review.findings import Finding, Review, SeedRow
from golf.review.legality import legality_findings
from golf.review.significance import significance

__all__ = ["Finding", "Review", "SeedRow", "board_rows", "review_folder", "review_record"]

MAX_MODULES = 8
"""Folder modules imported by the code that the legality scan also reads."""


def review_folder(
    folder: Path | str,
    *,
    against: Path | str | None = None,
    against_bpb: float | None = None,
    against_loss: float | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Review:
    """Review one record folder (see the module doc)."""
    rec = read_record(folder)
    base = read_record(against) if against is not None else None
    return review_record(rec, base, against_bpb, against_loss, overrides)


def review_record(
    rec: Record,
    base: Record | None = None,
    against_bpb: float | None = None,
    against_loss: float | None = None,
    overrides: Mapping[str, str] | None = None,
) -> Review:
    """Review an already-read record, optionally against an already-read baseline."""
    review = Review(folder=rec.name)
    for problem in rec.problems:
        review.add(Finding("files.unreadable", "files", "warn", problem))
    matched = seed_rows(rec, review)
    check_size(rec, review, matched)
    check_claims(rec, review, matched)
    check_time(rec, review, matched)
    _legality(rec, review, overrides)
    if base is not None or against_bpb is not None or against_loss is not None:
        review.significance = _significance(rec, review, base, against_bpb, against_loss)
    return review


def _legality(rec: Record, review: Review, overrides: Mapping[str, str] | None) -> None:
    src = rec.source
    if src is None:
        review.add(
            Finding(
                "legality.no_code",
                "legality",
                "warn",
                "no readable training script: legality not checked",
            )
        )
        return
    review.code = {
        "file": src.path.name,
        "kind": src.kind,
        "submitted_bytes": src.submitted_bytes,
        "code_bytes": src.code_bytes,
        "container": src.container,
        "target": src.code_name if src.kind == "stub" else None,
    }
    try:
        tree = rec.tree()
    except RecordError as e:
        review.add(Finding("legality.unparsed", "legality", "warn", f"legality not checked: {e}"))
        return
    try:
        hp = rec.hparams(overrides).values
    except RecordError as e:
        review.add(Finding("files.hparams", "files", "warn", str(e)))
        hp = rec.code_hparams().values
    _hardcoded(rec, review, hp, src.code_name)
    found = legality_findings(tree, src.code.splitlines(), src.code_name, hp)
    for path, mod_tree, text in _imported_modules(rec, tree, review):
        found += legality_findings(mod_tree, text.splitlines(), path.name, hp)
    for f in found:
        review.add(f)
    if not any(f.severity in ("fail", "flag") for f in found):
        review.add(
            Finding(
                "legality.clean",
                "legality",
                "pass",
                "no legality heuristic matched an enabled code path",
            )
        )


def _hardcoded(rec: Record, review: Review, hp: Mapping[str, Any], file: str) -> None:
    """Literal call arguments named like a hyperparameter but not equal to it, e.g.
    `Rotary(self.head_dim, train_seq_len=1024)` under TRAIN_SEQ_LEN=2048: the code does
    not follow its own setting there (an importer must use the literal)."""
    seen: dict[tuple[str, str, Any], list[int]] = {}
    for arg in rec.literal_call_args():
        if arg.keyword in hp and arg.value != hp[arg.keyword] and not isinstance(arg.value, str):
            if isinstance(arg.value, bool) or isinstance(hp[arg.keyword], bool):
                continue
            seen.setdefault((arg.callee, arg.keyword, arg.value), []).append(arg.line)
    for (callee, kw, value), lines in seen.items():
        review.add(Finding(
            "code.hardcoded_constant", "code", "info",
            f"{callee}({kw}={value!r}) is hard-coded while the hyperparameter {kw} is "
            f"{hp[kw]!r}",
            [f"{file}:{n}" for n in lines[:4]],
        ))  # fmt: skip


def _imported_modules(
    rec: Record, tree: ast.Module, review: Review
) -> list[tuple[Path, ast.Module, str]]:
    """Modules of the record folder that the code imports (`from ngram_tilt import …`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    out = []
    for name in sorted(names)[:64]:
        path = rec.folder / f"{name}.py"
        if not (path.is_file() or path.is_symlink()) or len(out) >= MAX_MODULES:
            continue
        try:
            text = read_text(rec.folder, path, MAX_SUBMITTED_BYTES)
            out.append((path, parse_python(text, path.name), text))
        except RecordError as e:
            review.add(Finding("files.unreadable", "files", "warn", str(e)))
    return out


def tokenizer_of(rec: Record) -> tuple[Any, Any]:
    """(vocab_size, tokenizer file name) by the record's hyperparameters, None if unknown."""
    try:
        hp = rec.hparams().values
    except RecordError:
        return None, None
    path = hp.get("tokenizer_path")
    return hp.get("vocab_size"), Path(path).name if isinstance(path, str) else None


def _significance(
    rec: Record,
    review: Review,
    base: Record | None,
    against_bpb: float | None,
    against_loss: float | None,
) -> dict[str, Any]:
    cand_loss, cand_bpb = per_seed_values(review)
    if base is not None:
        base_review = Review(folder=base.name)
        seed_rows(base, base_review)
        base_loss, base_bpb = per_seed_values(base_review)
        result = significance(cand_loss, cand_bpb, base_loss, base_bpb, baseline=base.name)
        if not base_loss:
            result["verdict"] = "untestable"
            result["notes"].append(f"{base.name} has no per-seed val_loss in its logs")
        mine, theirs = tokenizer_of(rec), tokenizer_of(base)
        differ = [
            f"{what} {a} vs {b}"
            for what, a, b in zip(("vocab", "tokenizer"), mine, theirs, strict=True)
            if a is not None and b is not None and a != b
        ]
        if differ:
            result["verdict"] = "untestable"
            for k in ("t", "dof", "p"):
                result.pop(k, None)
            result["notes"].append(
                "different tokenizers (" + "; ".join(differ) + "): nats per token are not "
                "comparable, only the bpb difference is meaningful"
            )
    else:
        label = f"val_loss {against_loss}" if against_loss is not None else f"val_bpb {against_bpb}"
        result = significance(
            cand_loss, cand_bpb, against_loss=against_loss, against_bpb=against_bpb, baseline=label
        )
    verdict = result["verdict"]
    severity = {"significant": "pass", "not significant": "warn"}.get(verdict, "info")
    msg = f"against {result['baseline']}: {verdict}"
    if "p" in result:
        msg += (
            f" (improvement {result['improvement_nats']:+.5f} nats, one-sided Welch "
            f"p = {result['p']:.3g} for > 0.005 nats)"
        )
    review.add(
        Finding(
            "significance." + verdict.replace(" ", "_"),
            "significance",
            severity,
            msg,
            list(result["notes"]),
        )
    )  # type: ignore[arg-type]
    return result


def board_rows(records_dir: Path | str) -> list[Review]:
    """Every record folder of `records_dir`, in name (date) order, each reviewed against
    the previous folder that has per-seed val_loss values (the record it had to beat)."""
    root = Path(records_dir)
    if not root.is_dir():
        raise RecordError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    out: list[Review] = []
    previous: Record | None = None
    for folder in folders:
        rec = read_record(folder)
        review = review_record(rec, previous)
        out.append(review)
        if per_seed_values(review)[0]:
            previous = rec
    return out
