"""`submission.json` in every shape the board has, with unknown fields kept.

Seen shapes (official board at 4908dc4): the headline as `val_bpb`, `mean_val_bpb` or
`mean_bpb` (one record states only `val_loss`-like fields beside it); its spread as
`val_bpb_std` or `std_bpb`; bytes as `bytes_total`, `artifact_size_bytes`, top-level
`artifact_bytes`, or only per seed; per-seed results as `seed_results` (seed → fields),
`seeds` or `val_bpb_seeds` as such a mapping (seed → val_bpb), or `seed_scores` (a list);
seeds as a list in `seeds`; numbers written as JSON strings (`"val_bpb": "0.9300"`, seen in
the seed lineage) are read as numbers;
times as `eval_time_s(_mean)`, `eval_time_seconds` (a number or a list), `train_time_s_mean`,
`train_time_seconds`, `wallclock_seconds`, per seed `eval_time_s`, `ttt_eval_time_s`,
`eval_time_ms`, `ttt_time_ms`, `train_time_s`, `train_time_ms`; `compliance` flags;
`submission_type`. The file may be renamed (`submission_ternary.json`): `find_submission`
takes `submission.json`, else the one `submission*.json`.

Per-seed `artifact_bytes` means different things in different records (the compressed
model alone, or model + code); `SeedClaim.bytes` keeps the number and `bytes_key` the key,
and golf.review decides which it is by comparing with the logs. Every top-level key this
module does not read is in `Submission.unknown`, shown by the review, never an error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golf.record.errors import RecordError
from golf.record.files import read_text

MAX_SUBMISSION_BYTES = 1_000_000
_NUMERIC = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")

_BPB_KEYS = ("val_bpb", "mean_val_bpb", "mean_bpb")
_LOSS_KEYS = ("val_loss", "mean_val_loss", "val_loss_nats", "mean_val_loss_nats")
_BPB_STD_KEYS = ("val_bpb_std", "std_bpb")
_LOSS_STD_KEYS = ("val_loss_std", "std_val_loss_nats", "val_loss_nats_std")
_BYTES_KEYS = ("bytes_total", "artifact_size_bytes", "artifact_bytes")
_EVAL_KEYS = ("eval_time_s", "eval_time_s_mean", "eval_time_seconds")
_TRAIN_KEYS = ("train_time_s", "train_time_s_mean", "train_time_seconds", "wallclock_seconds")
_READ = set(_BPB_KEYS + _LOSS_KEYS + _BPB_STD_KEYS + _LOSS_STD_KEYS + _BYTES_KEYS + _EVAL_KEYS
            + _TRAIN_KEYS) | {
    "seeds", "seed_results", "seed_scores", "compliance", "submission_type", "track", "name",
    "author", "github_id", "bytes_code", "code_bytes", "date", "blurb", "seed",
    "val_bpb_seeds",
}  # fmt: skip
_SEED_BYTES = ("artifact_bytes", "bytes_total", "total_bytes", "artifact_size_bytes")
_SEED_EVAL = (("eval_time_s", 1.0), ("ttt_eval_time_s", 1.0), ("eval_time_ms", 1e-3),
              ("ttt_time_ms", 1e-3))  # fmt: skip
_SEED_TRAIN = (("train_time_s", 1.0), ("train_time_ms", 1e-3))


@dataclass(frozen=True)
class SeedClaim:
    """What submission.json states for one seed."""

    seed: str
    val_bpb: float | None = None
    val_loss: float | None = None
    bytes: int | None = None
    bytes_key: str | None = None
    eval_time_s: float | None = None
    train_time_s: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    """A record's claims. `key_of` maps each read value (val_bpb, val_loss, val_bpb_std,
    val_loss_std, bytes_total, eval_time_s, train_time_s) to the key it came from."""

    name: str
    val_bpb: float | None = None
    val_loss: float | None = None
    val_bpb_std: float | None = None
    val_loss_std: float | None = None
    bytes_total: int | None = None
    bytes_code: int | None = None
    seeds: list[str] = field(default_factory=list)
    per_seed: list[SeedClaim] = field(default_factory=list)
    eval_time_s: float | None = None
    train_time_s: float | None = None
    compliance: dict[str, Any] = field(default_factory=dict)
    submission_type: str | None = None
    track: str | None = None
    title: str | None = None
    author: str | None = None
    key_of: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, Any] = field(default_factory=dict)

    def seed_claim(self, seed: str | int) -> SeedClaim | None:
        return next((c for c in self.per_seed if c.seed == str(seed)), None)


def find_submission(folder: Path) -> Path | None:
    """`submission.json`, else the only `submission*.json`, else None."""
    main = folder / "submission.json"
    if main.exists() or main.is_symlink():
        return main
    found = sorted(folder.glob("submission*.json"))
    return found[0] if len(found) == 1 else None


def read_submission(folder: Path, path: Path | None = None) -> Submission:
    """The claims of `path` (default: `find_submission(folder)`); RecordError when it is
    missing, too large, not JSON or not an object."""
    path = path or find_submission(folder)
    if path is None:
        raise RecordError(f"{folder.name}: no submission.json")
    text = read_text(folder, path, MAX_SUBMISSION_BYTES)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path.name}:{e.lineno}: not JSON ({e.msg})") from None
    except RecursionError:
        raise RecordError(f"{path.name}: nested too deeply") from None
    if not isinstance(doc, dict):
        raise RecordError(f"{path.name}: expected a JSON object, got {type(doc).__name__}")
    return parse_submission(doc, path.name)


def parse_submission(doc: dict[str, Any], name: str = "submission.json") -> Submission:
    """A Submission from an already-parsed document (see the module doc)."""
    key_of: dict[str, str] = {}

    def first(keys: tuple[str, ...], what: str, kind: type = float) -> Any:
        for k in keys:
            v = _number(doc.get(k), kind)
            if v is not None:
                key_of[what] = k
                return v
        return None

    per_seed = _per_seed(doc)
    seeds = [str(s) for s in doc["seeds"]] if isinstance(doc.get("seeds"), list) else []
    if not seeds:
        seeds = [c.seed for c in per_seed]
    if not seeds and _number(doc.get("seed"), int) is not None:
        seeds = [str(doc["seed"])]
    compliance = doc.get("compliance") if isinstance(doc.get("compliance"), dict) else {}
    return Submission(
        name=name,
        val_bpb=first(_BPB_KEYS, "val_bpb"),
        val_loss=first(_LOSS_KEYS, "val_loss"),
        val_bpb_std=first(_BPB_STD_KEYS, "val_bpb_std"),
        val_loss_std=first(_LOSS_STD_KEYS, "val_loss_std"),
        bytes_total=first(_BYTES_KEYS, "bytes_total", int),
        bytes_code=first(("bytes_code", "code_bytes"), "bytes_code", int),
        seeds=seeds,
        per_seed=per_seed,
        eval_time_s=_time(doc, _EVAL_KEYS, key_of, "eval_time_s"),
        train_time_s=_time(doc, _TRAIN_KEYS, key_of, "train_time_s"),
        compliance=dict(compliance),
        submission_type=_str(doc.get("submission_type")),
        track=_str(doc.get("track")),
        title=_str(doc.get("name")),
        author=_str(doc.get("author")),
        key_of=key_of,
        unknown={k: v for k, v in doc.items() if k not in _READ},
    )


def _per_seed(doc: dict[str, Any]) -> list[SeedClaim]:
    table = doc.get("seed_results")
    for alt in ("seeds", "val_bpb_seeds"):
        if not isinstance(table, dict) and isinstance(doc.get(alt), dict):
            table = doc[alt]
    out = []
    if isinstance(table, dict):
        for seed, fields in table.items():
            if isinstance(fields, dict):
                out.append(_claim(str(seed), fields))
            elif _number(fields, float) is not None:
                out.append(SeedClaim(str(seed), val_bpb=_number(fields, float)))
    elif isinstance(doc.get("seed_scores"), list):
        seeds = doc.get("seeds") if isinstance(doc.get("seeds"), list) else []
        for i, item in enumerate(doc["seed_scores"]):
            if isinstance(item, dict):
                seed = str(item.get("seed", seeds[i] if i < len(seeds) else i))
                out.append(_claim(seed, item))
            elif _number(item, float) is not None:
                seed = str(seeds[i]) if i < len(seeds) else str(i)
                out.append(SeedClaim(seed, val_bpb=_number(item, float)))
    return out


def _claim(seed: str, fields: dict[str, Any]) -> SeedClaim:
    bytes_key = next((k for k in _SEED_BYTES if _number(fields.get(k), int) is not None), None)
    eval_s = next(
        (_number(fields[k], float) * f for k, f in _SEED_EVAL  # type: ignore[operator]
         if _number(fields.get(k), float) is not None), None)  # fmt: skip
    train_s = next(
        (_number(fields[k], float) * f for k, f in _SEED_TRAIN  # type: ignore[operator]
         if _number(fields.get(k), float) is not None), None)  # fmt: skip
    return SeedClaim(
        seed=seed,
        val_bpb=_number(fields.get("val_bpb"), float),
        val_loss=_number(fields.get("val_loss"), float),
        bytes=_number(fields.get(bytes_key), int) if bytes_key else None,
        bytes_key=bytes_key,
        eval_time_s=eval_s,
        train_time_s=train_s,
        fields=dict(fields),
    )


def _time(doc: dict[str, Any], keys: tuple[str, ...], key_of: dict[str, str], what: str) -> Any:
    for k in keys:
        v = doc.get(k)
        if isinstance(v, list):
            nums = [x for x in (_number(i, float) for i in v) if x is not None]
            if nums:
                key_of[what] = f"{k} (max of {len(nums)})"
                return max(nums)
        elif (x := _number(v, float)) is not None:
            key_of[what] = k
            return x
    return None


def _number(v: Any, kind: type) -> Any:
    if isinstance(v, str) and _NUMERIC.match(v.strip()):
        v = float(v) if kind is float or not v.strip().lstrip("-").isdigit() else int(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if kind is int:
        return int(v) if float(v).is_integer() else None
    return float(v)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None
