"""Train logs of a record: scores, sizes, times and the hyperparameter dump, per seed.

A record folder holds its runs' logs as `train_seed*.log`, `train*.txt`, `train.log`,
`logs/train*.txt`, `ternary_log_42.txt` or eval-only logs in a sub-folder
(`ttt_pr1767/seed_0.log`); `find_logs` lists them (`*.log` anywhere two levels deep, and
`*.txt` whose name says train/log/seed). `parse_log` reads one line by line under a size
cap (`MAX_LOG_BYTES`, lines over `MAX_LINE_CHARS` skipped and counted) and keeps:

- score lines `KIND val_loss:X val_bpb:Y [eval_time:Zms]` (`:` or `=`, optional `stride:N`
  before or after). `KNOWN_KINDS` are the kinds seen on the board: the int8/int6
  roundtrips, sliding windows, `quantized*`, `legal_ttt*`, `quantized_ttt(_lora|_phased)`,
  the diagnostics, `final_ttt_lora`, `final_int6_ttt`. A score line of any other kind is
  kept in `unparsed` (with its line), and so is any other line that mentions val_bpb and
  is neither a progress line (`step:`, `N/M val_loss`, `ttt_chunk`, `ttp:`, `tttg:`,
  `ttt_progress:`, `running_bpb`) nor code echoed into the log (older scripts print
  their own source first);
- size lines: `Serialized model[ METHOD]: N bytes` (no METHOD: the raw state dict, not the
  artifact), `Code size[ (compressed|uncompressed)]: N bytes`, `Total submission size[
  METHOD]: N bytes`;
- times: `train_time:Nms` on step/stop lines (the largest is the run's train time),
  `eval_time:Nms` on score lines, `total_eval_time:Ns`, `ttt_sliding:done … elapsed=Ns`;
- the hyperparameter dump: `Hyperparameters:` followed by `  name: value` lines (newer
  scripts), or one line of `name=value` pairs (the ternary record);
- the seed: from the file name (`seed42`, `seed_0`, `log_1337`), else `seed:N` / the dump.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from golf.record.errors import RecordError
from golf.record.files import inside

MAX_LOG_BYTES = 64_000_000
"""One log; the board's largest is 3.2 MB (phased-TTT progress lines)."""
MAX_LINE_CHARS = 100_000
MAX_LOGS = 64
MAX_ENTRIES = 10_000
"""Names looked at in a record folder and its sub-folders."""
MAX_UNPARSED = 200
"""Unparsed lines kept per log (the count of the rest is kept too)."""

KNOWN_KINDS = frozenset(
    {
        "final_int8_zlib_roundtrip", "final_int8_zlib_roundtrip_exact",
        "final_int8_roundtrip", "final_int8_roundtrip_exact",
        "final_int6_roundtrip", "final_int6_roundtrip_exact",
        "final_int6_sliding_window", "final_int6_sliding_window_exact",
        "final_int8_sliding_window", "final_int8_sliding_window_exact",
        "final_sliding_window", "final_sliding_window_exact",
        "final_sliding_window_eval", "final_sliding_window_eval_exact", "final_sliding",
        "final_ternary_roundtrip",
        "quantized", "quantized_sliding_window",
        "legal_ttt", "legal_ttt_exact", "ttt_sliding:done",
        "quantized_ttt", "quantized_ttt_lora", "quantized_ttt_phased",
        "pre-quantization post-ema", "diagnostic pre-quantization post-ema",
        "diagnostic quantized", "DIAGNOSTIC post_ema", "final_int8_ttt_lora",
        "final_ttt_lora", "final_int6_ttt",
    }
)  # fmt: skip
DIAGNOSTIC_KINDS = frozenset(
    {
        "pre-quantization post-ema", "diagnostic pre-quantization post-ema",
        "diagnostic quantized", "DIAGNOSTIC post_ema",
    }
)  # fmt: skip
"""Kinds that are not a submission's score (pre-quantization or checks)."""

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SCORE = re.compile(
    rf"^(?P<kind>[A-Za-z][\w.:+-]*(?: [A-Za-z][\w.:+-]*)*?)\s+(?:stride[:=]\d+\s+)?"
    rf"val_loss[:=]\s*(?P<loss>{_NUM})\s+val_bpb[:=]\s*(?P<bpb>{_NUM})(?P<rest>.*)$"
)
_EVAL_MS = re.compile(rf"eval_time[:=]\s*(?P<v>{_NUM})ms")
_ELAPSED_S = re.compile(rf"elapsed[:=]\s*(?P<v>{_NUM})s")
_TRAIN_MS = re.compile(rf"train_time[:=]\s*(?P<v>{_NUM})ms")
_STEP_AVG = re.compile(rf"step_avg[:=]\s*(?P<v>{_NUM})ms")
_TOTAL_EVAL = re.compile(rf"^total_eval_time[:=]\s*(?P<v>{_NUM})s\s*$")
_SIZE = re.compile(
    r"^(?P<what>Serialized model|Code size|Total submission size)"
    r"(?:\s+(?P<method>\([^)]*\)|[^:\s][^:]*?))?:\s*(?P<n>\d+) bytes\b"
)
_STEP = re.compile(r"^(?:step:\s*\d+/\d+|\d+/\d+\s)")
_PROGRESS = re.compile(
    r"^(?:step:|\d+/\d+\s|\s*ttt_chunk|ttp:|tttg:|ttt_progress:|\s*sliding_eval\s*\[)"
    r"|running_bpb"
)
_CODE = re.compile(r"""[{}()\[\]"'=]\s*$|^\s|^(?:def|class|return|if|for|log\d?\()\b|f["']""")
_STAMP = re.compile(r"^\d{9,10}\.\d+\s+")
"""A unix-time prefix some logs put on every line (2026-04-13 VarLenAttn_PhasingTTT2000)."""
_SEED_NAME = re.compile(r"(?:seed|log)[_-]?(\d+)", re.IGNORECASE)
_SEED_LINE = re.compile(r"^seed[:=]\s*(\d+)\s*$")
_DUMP_ITEM = re.compile(r"^  (?P<k>[A-Za-z_]\w*):\s?(?P<v>.*)$")
_PAIRS = re.compile(r"^(?:[A-Za-z_]\w*=\S*)(?:\s+[A-Za-z_]\w*=\S*){4,}\s*$")


@dataclass(frozen=True)
class ScoreLine:
    """One `KIND val_loss:X val_bpb:Y` line; `eval_time_ms` when the line states it."""

    kind: str
    val_loss: float
    val_bpb: float
    eval_time_ms: float | None
    line: int
    text: str

    @property
    def diagnostic(self) -> bool:
        return self.kind in DIAGNOSTIC_KINDS


@dataclass(frozen=True)
class SizeLine:
    """`what` is model_raw, model, code, code_compressed, code_uncompressed or total;
    `method` the compression the line names (`int8+zlib`, `quantized+brotli`, …)."""

    what: str
    method: str | None
    bytes: int
    line: int
    text: str


@dataclass
class LogRun:
    """What one log says about one run."""

    name: str
    seed: int | None = None
    scores: list[ScoreLine] = field(default_factory=list)
    sizes: list[SizeLine] = field(default_factory=list)
    train_time_ms: float | None = None
    train_time_line: int | None = None
    step_avg_ms: float | None = None
    total_eval_s: float | None = None
    total_eval_line: int | None = None
    hparams: dict[str, str] = field(default_factory=dict)
    unparsed: list[tuple[int, str]] = field(default_factory=list)
    unparsed_more: int = 0
    long_lines: int = 0
    lines: int = 0

    @property
    def headline(self) -> ScoreLine | None:
        """The run's final score: the last non-diagnostic score line (its `_exact`
        twin when one follows with the same kind), else None."""
        finals = [s for s in self.scores if not s.diagnostic]
        if not finals:
            return None
        last = finals[-1]
        base = last.kind.removesuffix("_exact")
        same = [s for s in finals if s.kind.removesuffix("_exact") == base]
        exact = [s for s in same if s.kind.endswith("_exact")]
        return exact[-1] if exact else last

    def size(self, what: str) -> SizeLine | None:
        """The last size line of kind `what`."""
        found = [s for s in self.sizes if s.what == what]
        return found[-1] if found else None

    @property
    def artifact(self) -> SizeLine | None:
        """The compressed model's size line (a `Serialized model METHOD` line)."""
        return self.size("model")

    @property
    def total(self) -> SizeLine | None:
        """The submission total: the last `Total submission size METHOD` line, else the
        unqualified one only when no compressed model is logged."""
        qualified = [s for s in self.sizes if s.what == "total" and s.method]
        if qualified:
            return qualified[-1]
        plain = [s for s in self.sizes if s.what == "total"]
        return plain[-1] if plain and self.artifact is None else None

    @property
    def code(self) -> SizeLine | None:
        """The code size the run logged (`Code size`, else its uncompressed variant)."""
        return self.size("code") or self.size("code_uncompressed")

    @property
    def eval_s(self) -> float | None:
        """Evaluation wall time: `total_eval_time` when logged, else the headline's own
        (an `_exact` headline takes its twin's). Other evaluations in the log (diagnostics,
        the roundtrip before a sliding or TTT score) are not added: the logs do not say
        which of them a run's evaluation budget covers."""
        if self.total_eval_s is not None:
            return self.total_eval_s
        h = self.headline
        if h is None:
            return None
        ms = h.eval_time_ms
        if ms is None:  # an `_exact` line repeats its twin's number without the time
            twins = [s for s in self.scores if s.kind == h.kind.removesuffix("_exact")]
            ms = twins[-1].eval_time_ms if twins else None
        return None if ms is None else ms / 1000


def find_logs(folder: Path) -> list[Path]:
    """The log files of a record folder (see the module doc), sorted, at most MAX_LOGS.

    Walks the folder and its direct sub-folders only, looking at most at MAX_ENTRIES
    names, so a hostile tree costs nothing deeper."""
    found: list[Path] = []
    seen = 0
    stack = [(folder, 0)]
    while stack:
        here, depth = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > MAX_ENTRIES:
                raise RecordError(f"{folder.name}: more than {MAX_ENTRIES:,} files")
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if depth == 0:
                    stack.append((Path(entry.path), 1))
                continue
            name = entry.name.lower()
            if name.endswith(".log") or (
                name.endswith(".txt")
                and re.search(r"train|log|seed", name)
                and not name.startswith("requirements")
            ):
                found.append(Path(entry.path))
    if len(found) > MAX_LOGS:
        raise RecordError(f"{folder.name}: more than {MAX_LOGS} log files")
    return sorted(found, key=lambda p: str(p.relative_to(folder)))


def parse_log(folder: Path, path: Path, limit: int = MAX_LOG_BYTES) -> LogRun:
    """One log parsed line by line (see the module doc); RecordError past `limit` bytes,
    for a binary file, or a file outside the folder."""
    real = inside(folder, path)
    name = str(path.relative_to(folder))
    run = LogRun(name=name)
    m = _SEED_NAME.search(path.stem)
    if m:
        run.seed = int(m.group(1))
    read = 0
    in_dump = False
    with open(real, "rb") as f:
        for raw in f:
            read += len(raw)
            if read > limit:
                raise RecordError(f"{name}: larger than the {limit:,}-byte limit")
            run.lines += 1
            if b"\x00" in raw:
                raise RecordError(f"{name}: is binary, not text (NUL bytes, line {run.lines})")
            if len(raw) > MAX_LINE_CHARS:
                run.long_lines += 1
                in_dump = False
                continue
            text = _STAMP.sub("", raw.decode("utf-8", "replace").rstrip("\r\n"), count=1)
            if in_dump:
                item = _DUMP_ITEM.match(text)
                if item:
                    run.hparams[item.group("k")] = item.group("v").strip()
                    continue
                in_dump = False
            _line(run, text, run.lines)
            if text.strip() == "Hyperparameters:":
                in_dump = True
    if run.seed is None:
        seed = run.hparams.get("seed")
        if seed is not None and seed.strip().isdigit():
            run.seed = int(seed)
    return run


def _line(run: LogRun, text: str, n: int) -> None:
    text = _STAMP.sub("", text, count=1)
    stripped = text.strip()
    if not stripped:
        return
    if m := _SCORE.match(stripped):
        kind = m.group("kind")
        if not _STEP.match(stripped):
            ev = _EVAL_MS.search(m.group("rest"))
            eval_ms = float(ev.group("v")) if ev else None
            if eval_ms is None and (el := _ELAPSED_S.search(m.group("rest"))):
                eval_ms = float(el.group("v")) * 1000
            score = ScoreLine(
                kind, float(m.group("loss")), float(m.group("bpb")), eval_ms, n, stripped
            )
            if kind in KNOWN_KINDS:
                run.scores.append(score)
            else:
                _unparsed(run, n, stripped)
            return
    if m := _SIZE.match(stripped):
        what, method = m.group("what"), (m.group("method") or "").strip() or None
        if what == "Serialized model":
            kind = "model" if method else "model_raw"
        elif what == "Code size":
            kind = {"(compressed)": "code_compressed", "(uncompressed)": "code_uncompressed"}.get(
                method or "", "code"
            )
            method = None
        else:
            kind = "total"
        run.sizes.append(SizeLine(kind, method, int(m.group("n")), n, stripped))
        return
    if stripped.startswith(("step:", "stopping_early")) and (t := _TRAIN_MS.search(stripped)):
        ms = float(t.group("v"))
        if run.train_time_ms is None or ms >= run.train_time_ms:
            run.train_time_ms, run.train_time_line = ms, n
            if avg := _STEP_AVG.search(stripped):
                run.step_avg_ms = float(avg.group("v"))
        return
    if m := _TOTAL_EVAL.match(stripped):
        run.total_eval_s, run.total_eval_line = float(m.group("v")), n
        return
    if m := _SEED_LINE.match(stripped):
        run.seed = run.seed if run.seed is not None else int(m.group(1))
        return
    if _PAIRS.match(stripped) and "val_bpb" not in stripped and not run.hparams:
        for pair in stripped.split():
            k, _, v = pair.partition("=")
            run.hparams[k] = v
        return
    if "val_bpb" in stripped and not _PROGRESS.search(text) and not _CODE.search(text):
        if not stripped.startswith("val_bpb:enabled") and "byte_sidecar" not in stripped:
            _unparsed(run, n, stripped)


def _unparsed(run: LogRun, n: int, text: str) -> None:
    if len(run.unparsed) < MAX_UNPARSED:
        run.unparsed.append((n, text[:300]))
    else:
        run.unparsed_more += 1
