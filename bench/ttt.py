"""Score-first TTT cost beside sliding: seconds per 1,000 val tokens, one process.

Runs `sliding`, `ttt`, `ttt-lora` and `ttt-phased` on the same val tokens with the same
model (a seeded random init of the preset: cost depends on shapes, not weights) and
prints one JSON object on stdout (seconds, scored tokens, seconds per 1,000 tokens, the
ratio of each TTT protocol to sliding; process CPU seconds beside wall seconds, for shared
machines) and a table on stderr.

    .venv/bin/python bench/ttt.py --quick           # seed shape, L 256, 2,048 tokens (CPU)
    .venv/bin/python bench/ttt.py                   # seed shape, L 2048, 16,384 tokens
    .venv/bin/python bench/ttt.py --device cuda     # on a GPU (bf16 engine)

Every protocol keeps the records' settings (stride 64; ttt: 3 epochs of SGD; LoRA rank 96,
chunks of 32 targets, 64 documents a batch; phased: 3 phases) except the sizes that must
fit a short stream: `ttt` and the global SGD cut it into 4 chunks (the records' 32,768
tokens would make one chunk, which never trains) and phases cover half the documents.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from device import describe  # bench/ is first on sys.path when run as a file
from rich.console import Console
from rich.table import Table

from golf.data.demo import build_demo
from golf.data.shards import Dataset
from golf.engine.engine import Engine
from golf.engine.evaluate import evaluate, summarize
from golf.models.gpt import GPT
from golf.spec.config import preset
from golf.spec.documents import find_documents
from golf.spec.params import EvalParams

PROTOCOLS = ("sliding", "ttt", "ttt-lora", "ttt-phased")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="seed")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--tokens", type=int, default=16384, help="val tokens scored")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", type=Path, help="a demo dataset (built in a temp dir if absent)")
    p.add_argument("--quick", action="store_true", help="L 256 over 2,048 tokens")
    args = p.parse_args()
    if args.quick:
        args.seq_len, args.tokens = 256, 2048
    return args


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    err = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "demo"
            build_demo(data, max_chars=600_000, val_chars=200_000, console=Console(quiet=True))
        dataset = Dataset.open(data)
        config = preset(args.preset).replace(vocab_size=dataset.vocab_size)
        model = GPT(config).to(device).eval().requires_grad_(False)
        tokens = np.asarray(dataset.val_tokens(args.seq_len))[: args.tokens + 1]
        lut = dataset.byte_lut(config.vocab_size)
    n_docs = len(find_documents(tokens))
    chunk = max(args.seq_len, (len(tokens) - 1) // 4)
    params = EvalParams(
        seq_len=args.seq_len,
        stride=min(64, args.seq_len),
        ttt_chunk_tokens=chunk,
        global_chunk_tokens=chunk,
        phased_prefix_docs=max(1, n_docs // 2),
    )
    engine = Engine.resolve(params, device)
    prepared = engine.prepare(model)
    results: dict[str, dict] = {}
    for name in PROTOCOLS:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        records = evaluate(prepared, tokens, lut, name, params)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        summary = summarize(records)
        results[name] = {
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu,  # robust to a shared machine
            "tokens": summary["tokens"],
            "s_per_1k_tokens": 1000 * seconds / summary["tokens"],
            "val_bpb": summary["val_bpb"],
        }
    base = results["sliding"]["s_per_1k_tokens"]
    for r in results.values():
        r["ratio_to_sliding"] = r["s_per_1k_tokens"] / base
    doc = {
        "device": describe(device),
        "engine": prepared.info().model_dump(),
        "preset": args.preset,
        "seq_len": args.seq_len,
        "val_tokens": len(tokens),
        "documents": n_docs,
        "params": params.model_dump(
            include={
                "stride",
                "ttt_chunk_tokens",
                "ttt_epochs",
                "lora_rank",
                "lora_chunk",
                "lora_batch_docs",
                "phased_prefix_docs",
                "phased_phases",
                "global_chunk_tokens",
            }
        ),
        "protocols": results,
    }
    table = Table(title=f"{args.preset} L={args.seq_len} on {doc['device']}", title_justify="left")
    for col in ("protocol", "seconds", "s / 1k tokens", "× sliding", "val_bpb"):
        table.add_column(col, justify="left" if col == "protocol" else "right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['seconds']:.1f}",
            f"{r['s_per_1k_tokens']:.2f}",
            f"{r['ratio_to_sliding']:.2f}",
            f"{r['val_bpb']:.4f}",
        )
    err.print(table)
    json.dump(doc, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
