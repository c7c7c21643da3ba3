"""What `golf train` shows: a progress bar per stage, the JSONL log, the summary table."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from golf.console import err
from golf.data import Dataset
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


_SHOWN = ("loss", "tok_s", "lr_scale", "qat", "tensor", "bytes", "pre_quant", "artifact", "rtn")


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
