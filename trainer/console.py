"""What `golf train` shows: a progress bar per stage (plain lines when stderr is not a
terminal), the JSONL log, the summary table."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from golf.data.shards import Dataset
from golf.spec.console import err
from trainer.config import TrainConfig
from trainer.dist import Dist
from trainer.pipeline import Record, Reporter, RunSummary, run


class RichReporter(Reporter):
    """A progress bar per stage on stderr, plus the JSONL log."""

    def __init__(self, progress: Progress, log: Any = None):
        super().__init__(log)
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int | None) -> None:
        self.tasks[stage] = self.progress.add_task(stage, total=total, info="")

    def advance(self, stage: str, completed: int, record: Record) -> None:
        info = "  ".join(_short(k, v) for k, v in record.items() if k in _SHOWN)
        self.progress.update(self.tasks[stage], completed=completed, info=info)


class PlainReporter(Reporter):
    """Progress as plain lines on a console that is no terminal (a pipe, a CI log), where
    rich's bars would only show at the end: a line when a stage starts, then one each
    `every_pct` percent of it or `every_s` seconds, whichever comes first, and at its end."""

    def __init__(
        self,
        console: Any,
        log: Any = None,
        every_pct: float = 5.0,
        every_s: float = 30.0,
        now: Callable[[], float] = time.monotonic,
    ):
        super().__init__(log)
        self.console = console
        self.every_pct, self.every_s, self._now = every_pct, every_s, now
        self._stages: dict[str, tuple[int | None, float]] = {}  # stage → (total, start)
        self._last: dict[str, tuple[float, float]] = {}  # stage → (percent, time) printed

    def start(self, stage: str, total: int | None) -> None:
        now = self._now()
        self._stages[stage] = (total, now)
        self._last[stage] = (0.0, now)
        self._say(f"{stage}: started" + (f", {total:,} steps" if total else ""))

    def advance(self, stage: str, completed: int, record: Record) -> None:
        total, began = self._stages.get(stage, (None, self._now()))
        now = self._now()
        pct = 100 * completed / total if total else 0.0
        last_pct, last_t = self._last.get(stage, (0.0, began))
        finished = total is not None and completed >= total
        if not finished and pct - last_pct < self.every_pct and now - last_t < self.every_s:
            return
        self._last[stage] = (pct, now)
        count = f"{completed:,}/{total:,} ({pct:.0f}%)" if total else f"{completed:,}"
        info = "  ".join(_short(k, v) for k, v in record.items() if k in _SHOWN)
        self._say(f"{stage} {count} {_clock(now - began)}" + (f"  {info}" if info else ""))

    def _say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        file = getattr(self.console, "file", None)
        if file is not None and hasattr(file, "flush"):
            file.flush()


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


_SHOWN = (
    "loss", "tok_s", "lr_scale", "qat", "tensor", "bytes", "model", "pre_quant", "artifact", "rtn"
)  # fmt: skip


def _short(key: str, value: Any) -> str:
    return f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"


def run_with_progress(
    cfg: TrainConfig,
    dataset: Dataset,
    out_path: Path,
    dist: Dist,
    code_bytes: int,
    log: Path | None,
) -> RunSummary | None:
    if not dist.is_main:
        return run(cfg, dataset, out_path, dist, code_bytes=code_bytes)
    if not err.is_terminal:  # rich would draw its bars only at the end: plain lines instead
        with _open_log(log) as log_file:
            reporter = PlainReporter(err, log_file)
            return run(cfg, dataset, out_path, dist, code_bytes=code_bytes, reporter=reporter)
    columns = (
        TextColumn("{task.description:>6}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=err) as bar, _open_log(log) as log_file:
        reporter = RichReporter(bar, log_file)
        return run(cfg, dataset, out_path, dist, code_bytes=code_bytes, reporter=reporter)


def _open_log(path: Path | None) -> Any:
    if path is None:
        return nullcontext(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8")


def summary_table(summary: RunSummary) -> Table:
    """Stage by stage: what each did and what it cost."""
    f = summary.figures
    table = Table(title=f"golf train → {summary.out}", title_justify="left")
    table.add_column("stage")
    table.add_column("result")
    t = f["train"]
    table.add_row(
        "train",
        f"{t['steps']:,} steps, {t['tokens']:,} tokens, {t['seconds']:.1f} s "
        f"({t['tok_s']:,.0f} tok/s), final loss {t['final_loss']:.4f}",
    )
    if "ttt" in f:
        x = f["ttt"]
        table.add_row(
            "ttt",
            f"{x['epochs']} epoch(s) on {x['tokens']:,} {x['data']} tokens: "
            f"loss {x['loss_before']:.4f} → {x['loss_after']:.4f}",
        )
    v = f["verify"]
    table.add_row("quantize", f"{f['quantize']['method']}, {f['quantize']['tensors']} tensors")
    table.add_row(
        "verify",
        f"plain val_bpb {v['val_bpb_pre_quant']:.4f} pre-quant → {v['val_bpb_artifact']:.4f} "
        f"artifact (gap {v['quant_gap']:+.4f})"
        + (f"; round-to-nearest gap {v['rtn_gap']:+.4f}" if "rtn_gap" in v else ""),
    )
    table.add_row("size", summary.size_line())
    return table
