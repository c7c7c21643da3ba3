"""Builders of record folders for the golf.record / golf.review tests (written here, in
the records' shapes, not copied from them)."""

from __future__ import annotations

import base64
import json
import lzma
from pathlib import Path
from typing import Any

HPARAMS_CODE = """import os, uuid
_A = None
class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
    train_files = os.path.join(data_path, "fineweb_train_*.bin")
    seed = int(os.environ.get("SEED", 1337))
    run_id = os.environ.get("RUN_ID", str(uuid.uuid4()))
    train_seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 2048))
    eval_seq_len = int(os.environ.get("EVAL_SEQ_LEN", train_seq_len))
    vocab_size = int(os.environ.get("VOCAB_SIZE", 1024))
    model_dim = int(os.environ.get("MODEL_DIM", 512))
    num_heads = int(os.environ.get("NUM_HEADS", 8))
    head_dim = model_dim // num_heads
    mlp_mult = float(os.environ.get("MLP_MULT", 3.0))
    tie_embeddings = bool(int(os.environ.get("TIE_EMBEDDINGS", "1")))
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))
    ve_layers = [int(x) for x in os.environ.get("VE_LAYERS", "9,10").split(",") if x]
    compressor = os.environ.get("COMPRESSOR", "Brotli").strip().lower()
    ckpt = f"final_model_{vocab_size}.pt"
    grad_clip = float(os.environ.get("GRAD_CLIP", _A or 0.3))
    secret = os.environ["SECRET_KEY"]
    distributed = "RANK" in os.environ
    def method(self):
        return 1

class Rotary:
    def __init__(self, dim, base=10000.0, train_seq_len=1024):
        self.dim = dim

def build(h):
    return Rotary(h.head_dim, train_seq_len=1024)
"""


def shim(code: str, container: str = "raw") -> str:
    """A self-extracting wrapper around `code`, as the records write them."""
    if container == "raw":
        data = lzma.compress(
            code.encode(), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]
        )
        tail = ',format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]'
    else:
        data, tail = lzma.compress(code.encode()), ""
    text = base64.b85encode(data).decode()
    chunks = '""'.join(text[i : i + 100] for i in range(0, len(text), 100))
    return f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{chunks}"){tail}))\n'


def log_text(
    seed: int,
    bpb: float,
    loss: float,
    model_bytes: int,
    code_bytes: int,
    train_ms: float = 588000.0,
    eval_ms: float = 300000.0,
    kind: str = "quantized_ttt_phased",
    extra: str = "",
) -> str:
    """A train log in the newer scripts' shape: dump, steps, sizes, scores."""
    return (
        "Hyperparameters:\n"
        f"  seed: {seed}\n"
        "  train_seq_len: 2048\n"
        "  vocab_size: 8192\n"
        "====\n"
        "1/20000 train_loss: 9.0000 train_time: 0.0m tok/s: 8000000\n"
        "0/20000 val_loss: 9.0052 val_bpb: 3.4862\n"
        f"stopping_early: wallclock_cap train_time: {train_ms:.0f}ms step: 5178/20000\n"
        "pre-quantization post-ema val_loss:2.80947408 val_bpb:1.08764765 eval_time:6554ms\n"
        "Serialized model: 135426937 bytes\n"
        f"Code size: {code_bytes} bytes\n"
        f"Serialized model quantized+brotli: {model_bytes} bytes\n"
        f"Total submission size quantized+brotli: {model_bytes + code_bytes} bytes\n"
        "quantized val_loss:2.84032998 val_bpb:1.09959307 eval_time:8134ms\n"
        "ttp: b1/782 bl:3.2254 bb:1.2339 rl:2.7920 rb:1.0761 dl:95-97 gd:0\n"
        f"{kind} val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:{eval_ms:.0f}ms\n"
        f"total_eval_time:{eval_ms / 1000:.1f}s\n" + extra
    )


def make_record(
    folder: Path,
    code: str = HPARAMS_CODE,
    seeds: dict[int, tuple[float, float]] | None = None,
    model_bytes: int = 15_900_000,
    submission: dict[str, Any] | None = None,
    log_kwargs: dict[str, Any] | None = None,
) -> Path:
    """A record folder: train_gpt.py, one train_seed{N}.log per seed, submission.json
    whose claims match the logs unless `submission` says otherwise."""
    seeds = seeds or {42: (1.0800, 2.7900), 314: (1.0810, 2.7925), 999: (1.0790, 2.7875)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_gpt.py").write_text(code)
    code_bytes = len(code.encode())
    for seed, (bpb, loss) in seeds.items():
        text = log_text(seed, bpb, loss, model_bytes, code_bytes, **(log_kwargs or {}))
        (folder / f"train_seed{seed}.log").write_text(text)
    bpbs = [b for b, _ in seeds.values()]
    losses = [loss for _, loss in seeds.values()]
    mean = sum(bpbs) / len(bpbs)
    std = (sum((b - mean) ** 2 for b in bpbs) / (len(bpbs) - 1)) ** 0.5 if len(bpbs) > 1 else 0
    doc: dict[str, Any] = {
        "author": "tester",
        "val_bpb": round(mean, 8),
        "val_loss": round(sum(losses) / len(losses), 8),
        "val_bpb_std": round(std, 8),
        "seeds": list(seeds),
        "seed_results": {
            str(s): {"val_bpb": b, "val_loss": lo, "artifact_bytes": model_bytes + code_bytes}
            for s, (b, lo) in seeds.items()
        },
        "bytes_total": model_bytes + code_bytes,
    }
    doc.update(submission or {})
    doc = {k: v for k, v in doc.items() if v is not None}
    (folder / "submission.json").write_text(json.dumps(doc, indent=2))
    return folder
