"""Windows per second of sliding, SLOT-24 and causal SLOT at the seed shape, per engine.

Times, in one process and on the same windows, `sliding`, `slot` and `slot-causal` under
each engine (fp32 and bf16; with `--compile` also bf16 compiled), and prints one JSON
object on stdout (windows/s, peak memory, SLOT ÷ sliding time ratios, the projected
seconds for a full FineWeb val pass of 645,813 windows, the engine that ran, and the
issue's targets met or not) and a table on stderr.

    .venv/bin/python bench/gpu.py --device cuda                 # the GPU figures
    .venv/bin/python bench/gpu.py --device cuda --compile       # + bf16 compiled
    .venv/bin/python bench/gpu.py --device cpu --quick          # 1 window, smoke test

Conventions:

* The model is a seeded random init of the preset (default `seed`: 11L, d512, vocab
  1024) and the tokens are seeded random ids with a fixed byte table: cost depends on
  shapes, not weights or text, so no dataset is needed.
* Every protocol runs at L 2048, stride 96 (sliding too, although its own default
  stride differs), so SLOT ÷ sliding compares the same windows; a full val pass at
  stride 96 is 645,813 windows.
* Timed windows exclude window 0's batch (it scores all L targets of window 0; every
  later batch scores `stride` per window, like the 20,000 batches of a real pass). One
  untimed warm-up batch per run first (thread pools, allocator, autotuning, compiled
  graphs); then `--repeats` rounds over all runs in turn, best of each. CUDA time is
  taken after `torch.cuda.synchronize`.
* Peak memory: on CUDA `torch.cuda.max_memory_allocated` above the allocated level
  before the run; on CPU the resident set size sampled every 2 ms above its level at
  the start of the run, in-process after `malloc_trim` (bench/slot.py's `PeakMemory`),
  so memory a previous run freed but the allocator kept can hide part of a later run's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from device import describe  # bench/ is first on sys.path when run as a file
from rich.console import Console
from rich.table import Table
from slot import PeakMemory

from golf.data.bytes import ByteLUT
from golf.engine.engine import Engine, EngineModel
from golf.engine.evaluate import evaluate, summarize
from golf.models.gpt import GPT
from golf.spec.config import preset
from golf.spec.params import EvalParams

FULL_VAL_WINDOWS = 645_813
"""Windows of a full FineWeb val pass at L 2048, stride 96."""
PROTOCOLS = {"sliding": "sliding", "slot": "slot", "slot_causal": "slot-causal"}
ENGINES = {  # name -> EvalParams overrides
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "fp32_compiled": {"precision": "fp32", "compile": True},
    "bf16_compiled": {"precision": "bf16", "compile": True},
}
TARGETS = {
    "sliding_windows_per_s": 2200.0,  # bf16: a full val pass in ≤ 300 s
    "slot/sliding": 1.05,
    "slot_causal/sliding": 1.15,
    "stretch_sliding_windows_per_s": 3000.0,
}
QUICK = {"windows": 1, "batch_windows": 1, "repeats": 1}
FULL = {"windows": 2048, "batch_windows": 32, "repeats": 2}
RESULT_KEYS = (
    "protocol",
    "engine",
    "windows",
    "seconds",
    "seconds_each_round",
    "windows_per_s",
    "seconds_per_window",
    "projected_full_val_s",
    "peak_memory_mib",
    "val_bpb",
    "engine_info",
)
"""Keys of each entry of `results` (the documented JSON; tests/test_bench_gpu.py)."""
REPORT_KEYS = (
    "benchmark",
    "device",
    "torch",
    "triton",
    "threads",
    "preset",
    "seq_len",
    "stride",
    "windows",
    "batch_windows",
    "slot_steps",
    "repeats",
    "quick",
    "engines",
    "full_val_windows",
    "timing",
    "memory",
    "data",
    "results",
    "ratios",
    "abs_delta_val_bpb",
    "targets",
)
"""Top-level keys of the JSON, identical for --quick and full runs, CPU and CUDA."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="1 window in batches of 1, 1 round")
    parser.add_argument("--windows", type=int, help="timed windows (full: 2048)")
    parser.add_argument("--batch-windows", type=int, help="windows per batch B (full: 32)")
    parser.add_argument("--repeats", type=int, help="rounds over all runs (full: 2)")
    parser.add_argument("--compile", action="store_true", help="also run bf16 compiled")
    parser.add_argument(
        "--engines",
        help=f"comma-separated engines to run, of {','.join(ENGINES)} "
        "(default: fp32,bf16; --compile adds bf16_compiled)",
    )
    parser.add_argument("--slot-kernel", default="auto", choices=["auto", "torch", "triton"])
    parser.add_argument("--preset", default="seed", help="model preset (tests use tiny)")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--stride", type=int, default=96)
    parser.add_argument("--slot-steps", type=int, default=24)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    engines = (args.engines or "fp32,bf16").split(",") + (["bf16_compiled"] if args.compile else [])
    args.engines = list(dict.fromkeys(engines))
    unknown = [e for e in args.engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engines {unknown}; expected some of {list(ENGINES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available (use --device cpu)")
    if min(args.windows, args.batch_windows, args.repeats) < 1:
        parser.error("--windows, --batch-windows and --repeats must be ≥ 1")
    return args


def synthetic_inputs(
    args: argparse.Namespace, vocab_size: int
) -> tuple[np.ndarray, ByteLUT, EvalParams, range]:
    """Seeded random val tokens, a byte table, the shared parameters and the timed batches.

    The plan has one batch (window 0's) before the timed ones, which cover at least
    `args.windows` windows in whole batches.
    """
    batches = math.ceil(args.windows / args.batch_windows)
    plan_windows = (batches + 1) * args.batch_windows
    n_targets = (args.seq_len - args.stride) + plan_windows * args.stride
    generator = np.random.default_rng(0)
    tokens = generator.integers(0, vocab_size, n_targets + 1, dtype=np.int64)
    lut = ByteLUT(
        generator.integers(1, 7, vocab_size),  # 1–6 bytes a piece
        generator.random(vocab_size) < 0.3,  # some pieces start with ▁
        np.arange(vocab_size) < 4,  # control pieces
    )
    params = EvalParams(
        seq_len=args.seq_len,
        stride=args.stride,
        batch_windows=args.batch_windows,
        slot_steps=args.slot_steps,
        max_windows=plan_windows,
        slot_kernel=args.slot_kernel,
    )
    return tokens, lut, params, range(1, batches + 1)


def prepare_engines(args: argparse.Namespace, params: EvalParams) -> dict[str, EngineModel]:
    """The seeded model under each engine, prepared once as a worker does."""
    torch.manual_seed(0)
    model = GPT(preset(args.preset)).to(args.device).eval().requires_grad_(False)
    return {
        name: Engine.resolve(params.model_copy(update=ENGINES[name]), args.device).prepare(model)
        for name in args.engines
    }


def run_once(
    model: EngineModel,
    tokens: np.ndarray,
    lut: ByteLUT,
    protocol: str,
    params: EvalParams,
    batches: range,
) -> dict:
    """One timed pass over `batches`: seconds, windows, val_bpb and peak memory."""
    device = model.engine.device
    with PeakMemory(device) as memory:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        records = evaluate(model, tokens, lut, protocol, params, batches=batches)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    summary = summarize(records)
    return {
        "seconds": seconds,
        "windows": summary["windows"],
        "val_bpb": summary["val_bpb"],
        "peak_memory_mib": memory.peak_mib,
    }


def measure(args: argparse.Namespace, err: Console) -> dict:
    vocab_size = preset(args.preset).vocab_size
    tokens, lut, params, timed = synthetic_inputs(args, vocab_size)
    err.print(f"preparing {', '.join(args.engines)} on {args.device}")
    models = prepare_engines(args, params)
    runs = {
        f"{key}_{engine}": (protocol, engine)
        for engine in args.engines
        for key, protocol in PROTOCOLS.items()
    }
    run_params = {
        name: params.model_copy(update=ENGINES[engine]) for name, (_, engine) in runs.items()
    }
    err.print("warm-up: one batch of each run (compiling the compiled engines)")
    for name, (protocol, engine) in runs.items():
        evaluate(models[engine], tokens, lut, protocol, run_params[name], batches=[timed[0]])
    rounds: list[dict[str, dict]] = []
    for k in range(args.repeats):  # rounds in turn, best of each: a slow spell hits all alike
        err.print(f"round {k + 1}/{args.repeats}")
        rounds.append({})
        for name, (protocol, engine) in runs.items():
            r = run_once(models[engine], tokens, lut, protocol, run_params[name], timed)
            rounds[-1][name] = r
            err.print(f"  {name}: {_rate(r['windows'] / r['seconds'])} windows/s")
    results = {}
    for name, (protocol, engine) in runs.items():
        best = min((r[name] for r in rounds), key=lambda r: r["seconds"])
        per_s = best["windows"] / best["seconds"]
        results[name] = {
            "protocol": protocol,
            "engine": engine,
            "windows": best["windows"],
            "seconds": best["seconds"],
            "seconds_each_round": [r[name]["seconds"] for r in rounds],
            "windows_per_s": per_s,
            "seconds_per_window": 1 / per_s,
            "projected_full_val_s": FULL_VAL_WINDOWS / per_s,
            "peak_memory_mib": max(r[name]["peak_memory_mib"] for r in rounds),
            "val_bpb": best["val_bpb"],
            "engine_info": models[engine].info().model_dump(),
        }
    return results


def ratios_of(results: dict, engines: list[str]) -> dict[str, float]:
    """SLOT ÷ sliding seconds, per engine, on the same windows."""
    return {
        f"{key}_{engine}/sliding_{engine}": results[f"{key}_{engine}"]["seconds"]
        / results[f"sliding_{engine}"]["seconds"]
        for engine in engines
        for key in PROTOCOLS
        if key != "sliding"
    }


def targets_of(results: dict, ratios: dict, engines: list[str]) -> dict:
    """The issue's targets, judged on the fastest bf16 engine that ran (None: no bf16)."""
    bf16 = [e for e in engines if ENGINES[e]["precision"] == "bf16"]
    judged = max(bf16, key=lambda e: results[f"sliding_{e}"]["windows_per_s"], default=None)
    met: dict[str, bool | None] = dict.fromkeys(("sliding", "slot", "slot_causal", "stretch"), None)
    if judged is not None:
        rate = results[f"sliding_{judged}"]["windows_per_s"]
        met = {
            "sliding": rate >= TARGETS["sliding_windows_per_s"],
            "slot": ratios[f"slot_{judged}/sliding_{judged}"] <= TARGETS["slot/sliding"],
            "slot_causal": ratios[f"slot_causal_{judged}/sliding_{judged}"]
            <= TARGETS["slot_causal/sliding"],
            "stretch": rate >= TARGETS["stretch_sliding_windows_per_s"],
        }
    return {**TARGETS, "engine": judged, "met": met}


def report_of(args: argparse.Namespace, results: dict) -> dict:
    device = torch.device(args.device)
    ratios = ratios_of(results, args.engines)
    report = {
        "benchmark": "gpu",
        "device": describe(device),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "threads": torch.get_num_threads(),
        "preset": args.preset,
        "seq_len": args.seq_len,
        "stride": args.stride,
        "windows": next(iter(results.values()))["windows"],
        "batch_windows": args.batch_windows,
        "slot_steps": args.slot_steps,
        "repeats": args.repeats,
        "quick": args.quick,
        "engines": args.engines,
        "full_val_windows": FULL_VAL_WINDOWS,
        "timing": "best of rounds; warm-up batch and window 0's batch excluded"
        + ("; torch.cuda.synchronize before and after" if device.type == "cuda" else ""),
        "memory": "torch.cuda.max_memory_allocated above the starting allocation"
        if device.type == "cuda"
        else "resident set size above its start, sampled every 2 ms, in-process",
        "data": "seeded random tokens and byte table; seeded random init of the preset",
        "results": results,
        "ratios": ratios,
        "abs_delta_val_bpb": {  # every engine against fp32 eager, where both ran
            f"{key}_{engine}/fp32": abs(
                results[f"{key}_{engine}"]["val_bpb"] - results[f"{key}_fp32"]["val_bpb"]
            )
            for engine in args.engines
            if engine != "fp32" and "fp32" in args.engines
            for key in PROTOCOLS
        },
        "targets": targets_of(results, ratios, args.engines),
    }
    assert tuple(report) == REPORT_KEYS
    return report


def _triton_version() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return None
    import triton

    return triton.__version__


def _rate(per_s: float) -> str:
    return f"{per_s:,.1f}" if per_s >= 10 else f"{per_s:.3f}"


def table_of(args: argparse.Namespace, results: dict) -> Table:
    table = Table(
        title=f"{args.preset} L={args.seq_len} stride={args.stride} B={args.batch_windows} "
        f"on {describe(torch.device(args.device))}"
    )
    columns = ("run", "windows/s", "× sliding", "full val s", "peak MiB", "val_bpb", "engine")
    for column in columns:
        table.add_column(column, justify="left" if column in ("run", "engine") else "right")
    for name, r in results.items():
        sliding = results[f"sliding_{r['engine']}"]["seconds"]
        info = r["engine_info"]
        table.add_row(
            name,
            _rate(r["windows_per_s"]),
            f"{r['seconds'] / sliding:.3f}",
            f"{r['projected_full_val_s']:.0f}",
            f"{r['peak_memory_mib']:.0f}",
            f"{r['val_bpb']:.6f}",
            f"{info['attention']}, slot {info['slot_kernel']}",
        )
    return table


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 130)
    results = measure(args, err)
    report = report_of(args, results)
    err.print(table_of(args, results))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
