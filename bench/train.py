"""Training throughput: tokens per second and seconds per optimizer step of a preset.

    .venv/bin/python bench/train.py                          # tiny preset, CPU
    .venv/bin/python bench/train.py --preset seed --device cuda

Runs `--warmup + --steps` steps of the preset's recipe (its batch, sequence length,
Muon + AdamW, EMA) on the demo data and times the last `--steps` from the trainer's own
per-step callback, so start-up and warm-up are excluded. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from device import describe  # bench/ is first on sys.path when run as a file
from rich.console import Console

from golf.data.demo import build_demo
from golf.data.shards import Dataset
from golf.models.gpt import GPT
from trainer.config import preset
from trainer.dist import Dist
from trainer.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    total = args.warmup + args.steps
    recipe = preset(args.preset)
    cfg = recipe.replace(
        iterations=total,
        max_wallclock_s=None,
        warmup_steps=min(recipe.warmup_steps, args.warmup),
        warmdown_steps=0,
    )
    dist = Dist.from_env(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        build_demo(tmp, console=Console(quiet=True))
        tokens = Dataset.open(tmp).train_tokens()
    stamps: dict[int, float] = {}

    def on_step(step: int, _total: int, _record: dict) -> None:
        if dist.device.type == "cuda":
            torch.cuda.synchronize(dist.device)
        stamps[step] = time.perf_counter()

    train(cfg, tokens, dist, progress=on_step)
    seconds = stamps[total] - stamps[args.warmup]
    report = {
        "benchmark": "train",
        "preset": args.preset,
        "device": describe(dist.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seq_len": cfg.seq_len,
        "batch_tokens": cfg.batch_tokens,
        "parameters": sum(p.numel() for p in GPT(cfg.model).parameters()),
        "steps_timed": args.steps,
        "seconds_per_step": seconds / args.steps,
        "tokens_per_second": cfg.batch_tokens * args.steps / seconds,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
