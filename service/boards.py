"""Leaderboard rows: seed groups ranked by their mean, as Parameter Golf ranks submissions.

A submission's score is the mean over its seeds. An entry is one owner's group (jobs
submitted with `--group NAME`), or an untagged artifact, under one protocol and one set
of evaluation parameters (a mean over different strides would be no one's score). Its
seeds are its distinct artifacts (re-evaluating an artifact is the same number, so it
counts once: the latest job). The row carries n, the mean and sample std of val_bpb
(None for n = 1), the eval parameters, the owner and the eval time.

Partial runs (golf.spec.tables.is_partial) never rank as whole-val scores: they are left off
unless asked for, and then each such row says `partial: true`; they never share a mean
with whole runs. Pure: a function of job rows and what the store knows of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from golf.spec.stats import mean_std
from golf.spec.tables import is_partial
from service.store import JobRow

SLOT_FIELDS = ("slot_steps", "slot_lr", "slot_lr_min", "batch_windows", "batch_invariant")


def eval_params(protocol: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters that decide a protocol's score, as a board shows them: seq_len and
    stride always; SLOT's fit for SLOT protocols; the plan and reference path when not
    the defaults; the engine's precision."""
    shown = {"seq_len": params.get("seq_len"), "stride": params.get("stride")}
    if protocol.startswith("slot"):
        shown |= {k: params.get(k) for k in SLOT_FIELDS}
    if params.get("plan", "canonical") != "canonical":
        shown["plan"] = params["plan"]
    if params.get("reference"):
        shown["reference"] = True
    shown["precision"] = params.get("precision", "auto")
    return shown


def _key_params(params: dict[str, Any]) -> str:
    """Every parameter but max_windows (whether it cut the run is `partial`'s business)."""
    return json.dumps({k: v for k, v in params.items() if k != "max_windows"}, sort_keys=True)


def board_rows(
    jobs: Iterable[JobRow],
    code_bytes_of: Callable[[JobRow], int],
    protocol: str | None = None,
    include_partial: bool = False,
) -> list[dict[str, Any]]:
    """One row per entry, protocol, parameters and partial-ness, sorted by protocol then
    mean val_bpb (n breaking ties, more seeds first). `jobs` come oldest first, so a later
    job of the same artifact replaces the earlier one."""
    entries: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for job in jobs:
        report = job.report or {}
        flags = report.get("flags") or []
        art = report.get("artifact") or {}
        for r in report.get("reports") or []:
            if protocol is not None and r["protocol"] != protocol:
                continue
            partial = is_partial(r)
            if partial and not include_partial:
                continue
            entry = job.group or job.artifact
            key = (r["protocol"], job.owner, entry, _key_params(r["params"]), partial)
            entries.setdefault(key, {})[job.artifact] = {
                "job": job,
                "report": r,
                "flags": [f for f in flags if f.get("protocol") in (None, r["protocol"])],
                "total_bytes": art.get("total_bytes", 0),
                "verdict": art.get("verdict", "unknown"),
                "code_bytes": code_bytes_of(job),
            }
    rows = [_row(key, list(seeds.values())) for key, seeds in entries.items()]
    return sorted(rows, key=lambda row: (row["protocol"], row["val_bpb"], -row["seeds"]))


def _row(key: tuple[Any, ...], seeds: list[dict[str, Any]]) -> dict[str, Any]:
    protocol, owner, _, _, partial = key
    seeds.sort(key=lambda s: (s["job"].finished_at or 0, s["job"].id))
    latest = seeds[-1]
    bpb, bpb_std = mean_std([s["report"]["val_bpb"] for s in seeds])
    loss, _ = mean_std([s["report"]["val_loss"] for s in seeds])
    times = [
        s["report"].get("wall_s") if s["report"].get("wall_s") is not None else
        s["report"].get("elapsed_s")
        for s in seeds
    ]  # fmt: skip
    projected = [s["report"].get("projected_8xh100_s") for s in seeds]
    flags: dict[str, dict[str, Any]] = {}
    for s in seeds:
        flags |= {json.dumps(f, sort_keys=True): f for f in s["flags"]}
    over = any(s["verdict"] == "over budget" for s in seeds)
    return {
        "protocol": protocol,
        "val_bpb": bpb,
        "val_bpb_std": bpb_std,
        "val_loss": loss,
        "seeds": len(seeds),
        "val_bpbs": [s["report"]["val_bpb"] for s in seeds],
        "owner": owner,
        "artifact": latest["job"].artifact,
        "group": latest["job"].group,
        "job": latest["job"].id,
        "jobs": [s["job"].id for s in seeds],
        "params": eval_params(protocol, latest["report"]["params"]),
        "eval_s": max((t for t in times if t is not None), default=None),
        "projected_8xh100_s": max(projected) if None not in projected else None,
        "device": (latest["report"].get("engine") or {}).get("device_name"),
        "total_bytes": max(s["total_bytes"] for s in seeds),
        "code_bytes": max(s["code_bytes"] for s in seeds),
        "verdict": "over budget" if over else latest["verdict"],
        "flags": list(flags.values()),
        "partial": partial,
        "finished_at": latest["job"].finished_at,
    }
