"""A chain on a gang: wall seconds of `ttt` and `ttt-phased` on 1 and 2 Ray actors.

The chains are sequential, so a gang splits each step (window batches, SGD rows, document
batches) across its ranks and adds the gradients in rank order. This times one whole
chain per world size on warm actors (each chain runs once untimed first, so loading the
model and joining the group are not counted), and prints one JSON object on stdout (wall
seconds per world size, the ratio world 1 / world 2, and |Δ val_bpb| between them) and a
table on stderr. On a 2-core CPU a gang of two mostly measures its overhead; on GPUs each
rank is a device.

    .venv/bin/python bench/gang.py --quick       # tiny model, 8,192 tokens (CPU)
    .venv/bin/python bench/gang.py               # seed shape, L 2048, 65,536 tokens
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch
from device import describe  # bench/ is first on sys.path when run as a file
from rich.console import Console
from rich.table import Table

from golf.data.bytes import bits_per_byte
from golf.data.demo import build_demo
from golf.data.shards import Dataset
from golf.formats.artifact import random_artifact
from golf.spec.config import preset
from golf.spec.params import EvalParams
from workers.actor import EvalWorker
from workers.gang import Gang
from workers.task import Blob, ChainTask

PROTOCOLS = ("ttt", "ttt-phased")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="seed")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--tokens", type=int, default=65536, help="val tokens scored")
    p.add_argument("--threads", type=int, default=1, help="torch threads per actor")
    p.add_argument("--quick", action="store_true", help="tiny preset, L 128, 8,192 tokens")
    args = p.parse_args()
    if args.quick:
        args.preset, args.seq_len, args.tokens = "tiny", 128, 8192
    return args


def params(seq_len: int, tokens: int) -> EvalParams:
    """The records' settings, at sizes a short stream holds: 8 ttt chunks, 3 phases over
    half the documents, global SGD in 4 chunks."""
    chunk = max(seq_len, tokens // 8)
    return EvalParams(
        seq_len=seq_len,
        stride=min(64, seq_len),
        precision="fp32",
        ttt_chunk_tokens=chunk,
        global_chunk_tokens=max(seq_len, tokens // 4),
        phased_prefix_docs=64,
        lora_batch_docs=16,
    )


def chain_task(protocol: str, blobs: dict[str, Blob], p: EvalParams) -> ChainTask:
    return ChainTask(
        job="bench",
        protocol=protocol,
        shard=0,
        params=p,
        artifact=blobs["artifact"],
        max_decompressed=1 << 30,
        tokens=blobs["tokens"],
        byte_lut=blobs["byte_lut"],
        record_key=b"bench",
        every=0,
    )


def run(actors: list, task: ChainTask, name: str) -> tuple[float, float]:
    """(wall seconds, val_bpb) of one chain on `actors`."""

    async def collect() -> list[dict]:
        gang = Gang(actors, name)
        try:
            return [item async for item in gang.stream(task)]
        finally:
            gang.close()

    started = time.perf_counter()
    items = asyncio.run(collect())
    wall = time.perf_counter() - started
    records = [r for item in items for r in item["records"]]
    nll = sum(r["nll_sum"] for r in records)
    return wall, bits_per_byte(nll, sum(r["bytes"] for r in records))


def main() -> None:
    args = parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "demo"
        build_demo(data, console=Console(quiet=True), max_chars=2_000_000, val_chars=400_000)
        dataset = Dataset.open(data)
        config = preset(args.preset).replace(vocab_size=dataset.vocab_size)
        artifact = Path(tmp) / "bench.golf"
        random_artifact(config, dataset.tokenizer_sha256, dataset.vocab_size, artifact, seed=0)
        tokens = np.ascontiguousarray(dataset.val_tokens(args.seq_len)[: args.tokens + 1])
        raw = artifact.read_bytes()
        blobs = {
            "artifact": Blob(hashlib.sha256(raw).hexdigest(), ray.put(raw)),
            "tokens": Blob("tokens", ray.put(tokens)),
            "byte_lut": Blob("lut", ray.put(dataset.byte_counter(dataset.vocab_size))),
        }
    actors = [
        EvalWorker.options(num_cpus=0.5).remote(f"bench-{i}", args.threads, 2) for i in range(2)
    ]
    ray.get([a.info.remote() for a in actors])
    p = params(args.seq_len, len(tokens) - 1)
    out: dict = {
        "bench": "gang",
        "device": describe(torch.device("cpu")),  # CPU actors: Ray gives them no GPU here
        "preset": args.preset,
        "seq_len": args.seq_len,
        "tokens": len(tokens) - 1,
        "threads_per_actor": args.threads,
        "protocols": {},
    }
    for protocol in PROTOCOLS:
        task = chain_task(protocol, blobs, p)
        row = {}
        for world in (1, 2):
            run(actors[:world], task, f"warm-{protocol}-{world}")  # load, join: untimed
            wall, bpb = run(actors[:world], task, f"{protocol}-{world}")
            row[f"world{world}"] = {"wall_s": round(wall, 3), "val_bpb": bpb}
        row["speedup_2_over_1"] = round(row["world1"]["wall_s"] / row["world2"]["wall_s"], 3)
        row["abs_delta_bpb"] = abs(row["world1"]["val_bpb"] - row["world2"]["val_bpb"])
        out["protocols"][protocol] = row
    ray.shutdown()
    table = Table(title=f"chains on a gang ({args.preset}, L {args.seq_len})")
    for column in ("protocol", "world 1 s", "world 2 s", "1 / 2", "|Δ val_bpb|"):
        table.add_column(column, justify="right")
    for protocol, row in out["protocols"].items():
        table.add_row(
            protocol,
            f"{row['world1']['wall_s']:.2f}",
            f"{row['world2']['wall_s']:.2f}",
            f"{row['speedup_2_over_1']:.2f}",
            f"{row['abs_delta_bpb']:.1e}",
        )
    Console(file=sys.stderr).print(table)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
