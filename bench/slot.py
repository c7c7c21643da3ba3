"""SLOT cost against the sliding pass it needs, at the seed's full shape.

Times, in one process and on the same windows: `sliding`, `slot` (fast path), `slot`
(literal reference path), `slot-causal` (fast and reference), all in fp32, and sliding
and fast SLOT again in bf16 (autocast) and compiled (torch.compile). Prints one JSON
object on stdout (seconds per window, the ratios to sliding, peak memory, |Δ val_bpb|
fast vs reference and of each engine vs fp32 eager) and a table on stderr.

    .venv/bin/python bench/slot.py                  # seed preset, L 2048, stride 96, 16 windows
    .venv/bin/python bench/slot.py --device cuda    # on a GPU

The model is a seeded random init of the preset: cost depends on shapes, not weights.
Peak memory is the CUDA allocator's peak on a GPU; on CPU it is the resident set size
sampled every 2 ms during the run, above what it was before it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from device import describe  # bench/ is first on sys.path when run as a file
from rich.console import Console
from rich.table import Table

from golf.data.bytes import ByteLUT
from golf.data.demo import build_demo
from golf.data.shards import Dataset
from golf.engine.engine import Engine, EngineModel
from golf.engine.evaluate import evaluate, summarize
from golf.models.gpt import GPT
from golf.spec.config import preset
from golf.spec.params import EvalParams

FP32 = {"precision": "fp32"}
BF16 = {"precision": "bf16"}
COMPILED = {"precision": "fp32", "compile": True}
RUNS = {  # name -> (protocol, parameter overrides)
    "sliding": ("sliding", FP32),
    "slot_fast": ("slot", FP32),
    "slot_reference": ("slot", FP32 | {"reference": True}),
    "slot_causal_fast": ("slot-causal", FP32),
    "slot_causal_reference": ("slot-causal", FP32 | {"reference": True}),
    "sliding_bf16": ("sliding", BF16),
    "slot_fast_bf16": ("slot", BF16),
    "sliding_compiled": ("sliding", COMPILED),
    "slot_fast_compiled": ("slot", COMPILED),
}
ENGINES = {"fp32": FP32, "bf16": BF16, "compiled": COMPILED}


def engine_of(name: str) -> str:
    """The engine a run uses: the most specific one whose settings it includes."""
    overrides = RUNS[name][1]
    fits = [k for k, v in ENGINES.items() if v.items() <= overrides.items()]
    return max(fits, key=lambda k: len(ENGINES[k]))


class PeakMemory:
    """Peak memory above the starting level while the block runs, in MiB.

    CPU figures come from a fresh process per run (see `--memory-of`): freed memory that
    the allocator keeps would otherwise hide the next run's growth.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_mib = 0.0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        self._base = self._peak = _rss()
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._done.set()
            self._sampler.join()
            peak = max(self._peak, _rss())
        self.peak_mib = (peak - self._base) / 2**20

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self._peak = max(self._peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--stride", type=int, default=96)
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--batch-windows", type=int, default=8)
    parser.add_argument("--slot-steps", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all runs")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--memory-of", choices=RUNS, help=argparse.SUPPRESS)
    return parser.parse_args()


Models = dict[str, EngineModel]


def setup(args: argparse.Namespace, data: Path) -> tuple[Models, np.ndarray, ByteLUT, EvalParams]:
    """The seeded model under each engine, val tokens, byte tables and shared parameters.

    Each engine prepares the model once (bf16 tables, the compiled forward), as a worker
    does, so the runs time evaluation, not preparation."""
    dataset = Dataset.open(data)
    torch.manual_seed(0)
    model = GPT(preset(args.preset).replace(vocab_size=dataset.vocab_size))
    params = EvalParams(
        seq_len=args.seq_len,
        stride=args.stride,
        batch_windows=args.batch_windows,
        slot_steps=args.slot_steps,
        max_windows=args.windows,
    )
    tokens = dataset.val_tokens(args.seq_len)
    model = model.to(args.device).eval()
    models = {
        name: Engine.resolve(params.model_copy(update=engine), args.device).prepare(model)
        for name, engine in ENGINES.items()
    }
    return models, tokens, dataset.byte_lut(dataset.vocab_size), params


def run(models: Models, tokens: np.ndarray, lut: ByteLUT, params: EvalParams, name: str) -> dict:
    """One timed evaluation of run `name` and its peak memory."""
    protocol, overrides = RUNS[name]
    model = models[engine_of(name)]
    device = model.head_weight.device
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        records = evaluate(model, tokens, lut, protocol, params.model_copy(update=overrides))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    summary = summarize(records)
    return {
        "seconds": seconds,
        "seconds_per_window": seconds / summary["windows"],
        "val_bpb": summary["val_bpb"],
        "windows": summary["windows"],
        "peak_memory_mib": memory.peak_mib,
    }


def memory_in_fresh_process(args: argparse.Namespace, data: Path, name: str) -> float:
    """Peak CPU memory of run `name`, measured in a process that ran nothing else.

    One batch suffices: every batch has the same shape, so the peak is per batch.
    """
    argv = [sys.executable, __file__, "--data", str(data), "--memory-of", name]
    argv += ["--windows", str(args.batch_windows)]
    for flag in ("preset", "device", "seq_len", "stride", "batch_windows", "slot_steps"):
        argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)["peak_memory_mib"]


def main() -> None:
    args = parse_args()
    if args.memory_of:
        models, tokens, lut, params = setup(args, args.data)
        if engine_of(args.memory_of) == "compiled":  # compile first, outside the measure
            protocol, overrides = RUNS[args.memory_of]
            warm = params.model_copy(update=overrides | {"max_windows": args.windows})
            evaluate(models["compiled"], tokens, lut, protocol, warm)
        print(json.dumps(run(models, tokens, lut, params, args.memory_of)))
        return
    err = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        build_demo(data, max_chars=1_500_000, val_chars=300_000, console=Console(quiet=True))
        models, tokens, lut, params = setup(args, data)
        # Two batches of each run first: thread pools and allocator caches warm up, and the
        # compiled forward is compiled for both of its shapes (the first batch scores every
        # position of window 0, later ones a stride each; all are padded to B windows).
        err.print("warm-up (compiling the compiled runs)")
        warm_windows = {"max_windows": min(args.windows, 2 * params.batch_windows)}
        for name, (protocol, overrides) in RUNS.items():
            if not overrides.get("reference"):
                warm = params.model_copy(update=overrides | warm_windows)
                evaluate(models[engine_of(name)], tokens, lut, protocol, warm)
        # Rounds in turn, best of each: a slow spell of the machine hits every run alike.
        rounds = []
        for k in range(args.repeats):
            err.print(f"round {k + 1}/{args.repeats}")
            rounds.append({name: run(models, tokens, lut, params, name) for name in RUNS})
        results = {
            name: min((r[name] for r in rounds), key=lambda r: r["seconds"]) for name in RUNS
        }
        for name in RUNS:
            results[name]["seconds_each_round"] = [r[name]["seconds"] for r in rounds]
            if torch.device(args.device).type == "cpu":
                results[name]["peak_memory_mib"] = memory_in_fresh_process(args, data, name)

    sliding = results["sliding"]["seconds"]
    report = {
        "benchmark": "slot",
        "device": describe(torch.device(args.device)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "seq_len": args.seq_len,
        "stride": args.stride,
        "windows": args.windows,
        "batch_windows": args.batch_windows,
        "slot_steps": args.slot_steps,
        "repeats": args.repeats,
        "results": results,
        "ratios": {
            f"{name}/sliding": results[name]["seconds"] / sliding
            for name in RUNS
            if name != "sliding"
        },
        "abs_delta_val_bpb": {
            "slot": abs(results["slot_fast"]["val_bpb"] - results["slot_reference"]["val_bpb"]),
            "slot_causal": abs(
                results["slot_causal_fast"]["val_bpb"] - results["slot_causal_reference"]["val_bpb"]
            ),
            **{
                f"{name}/fp32": abs(
                    results[name]["val_bpb"] - results[name.rsplit("_", 1)[0]]["val_bpb"]
                )
                for name in RUNS
                if engine_of(name) != "fp32"
            },
        },
    }
    table = Table(title=f"{args.preset} L={args.seq_len} stride={args.stride} on {args.device}")
    for column in ("run", "s/window", "× sliding", "peak MiB", "val_bpb"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['seconds_per_window']:.3f}",
            f"{r['seconds'] / sliding:.3f}",
            f"{r['peak_memory_mib']:.0f}",
            f"{r['val_bpb']:.6f}",
        )
    err.print(table)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
