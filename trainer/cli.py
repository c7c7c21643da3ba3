"""`golf train`: plugged into the `golf` command through the `golf.commands` entry point."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from golf.cli import err, out, pick_device, user_errors
from golf.data import Dataset
from golf.errors import ConfigError
from trainer.config import TrainConfig, preset
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


def train_command(
    data: Annotated[Path, typer.Option(help="Dataset folder (train and val shards).")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the .golf artifact.")],
    preset_name: Annotated[
        str | None, typer.Option("--preset", help="Recipe: tiny (CPU) or seed (8×H100).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML recipe (preset = base, fields, [model]).")
    ] = None,
    tokenizer: Annotated[Path | None, typer.Option(help="tokenizer.model if not in DATA.")] = None,
    seed: Annotated[int | None, typer.Option(help="Training seed.")] = None,
    code_bytes: Annotated[int, typer.Option(help="Bytes of code counted in the budget.")] = 0,
    log: Annotated[Path | None, typer.Option(help="JSONL log of every logged step.")] = None,
    iterations: Annotated[int | None, typer.Option(help="Training steps.")] = None,
    max_wallclock: Annotated[
        float | None, typer.Option(help="Training wall-clock budget, seconds.")
    ] = None,
    ttt_epochs: Annotated[int | None, typer.Option(help="Pre-quant TTT epochs (0: none).")] = None,
    ttt_data: Annotated[str | None, typer.Option(help="TTT data: train or val.")] = None,
    gptq_calibration: Annotated[
        str | None, typer.Option(help="GPTQ calibration: train, val or self.")
    ] = None,
    rtn: Annotated[bool, typer.Option("--rtn", help="Round-to-nearest instead of GPTQ.")] = False,
    device: Annotated[str, typer.Option(help="torch device; auto = cuda when available.")] = "auto",
) -> None:
    """Train, adapt (TTT), quantize (GPTQ int6) and pack an artifact; verify it."""
    if (preset_name is None) == (config is None):
        raise ConfigError("give exactly one of --preset and --config")
    cfg = TrainConfig.load(config) if config else preset(preset_name)
    overrides = {
        "seed": seed,
        "iterations": iterations,
        "max_wallclock_s": max_wallclock,
        "ttt_epochs": ttt_epochs,
        "ttt_data": ttt_data,
        "gptq_calibration": gptq_calibration,
    }
    changes = {k: v for k, v in overrides.items() if v is not None}
    if iterations is not None:
        changes["warmdown_steps"] = min(cfg.warmdown_steps, iterations - cfg.warmup_steps)
    if rtn:
        changes["gptq"] = False
    cfg = cfg.replace(**changes) if changes else cfg
    dataset = Dataset.open(data, tokenizer)
    dist = Dist.from_env(pick_device(device))
    try:
        summary = _run_with_progress(cfg, dataset, out_path, dist, code_bytes, log)
    finally:
        dist.close()
    if summary is not None:
        out.print(summary_table(summary))
        out.print(f"{summary.out}: {summary.size_line()}")


def _run_with_progress(
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


def register(app: typer.Typer) -> None:
    """Entry point of the `golf.commands` group."""
    app.command("train")(user_errors(train_command))
