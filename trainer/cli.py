"""`golf train`: plugged into the `golf` command through the `golf.commands` entry point.

The command imports the trainer when it runs, so other `golf` commands start without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from golf.spec.console import out, user_errors
from golf.spec.errors import ConfigError


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
    code: Annotated[
        Path | None,
        typer.Option(
            "--code",
            help="The submission's code file: its size is the code bytes (instead of "
            "--code-bytes) declared in the artifact.",
            show_default=False,
        ),
    ] = None,
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
    from golf.data.shards import Dataset
    from golf.engine.engine import pick_device
    from trainer.config import TrainConfig, preset
    from trainer.console import run_with_progress, summary_table
    from trainer.dist import Dist

    if (preset_name is None) == (config is None):
        raise ConfigError("give exactly one of --preset and --config")
    if code is not None:
        from golf.spec.records import code_file

        if code_bytes:
            raise ConfigError("give one of --code and --code-bytes")
        code_bytes = code_file(code)[0]
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
        summary = run_with_progress(cfg, dataset, out_path, dist, code_bytes, log)
    finally:
        dist.close()
    if summary is not None:
        out.print(summary_table(summary))
        out.print(f"{summary.out}: {summary.size_line()}")


def register(app: typer.Typer) -> None:
    """Entry point of the `golf.commands` group."""
    app.command("train")(user_errors(extra="train")(train_command))
