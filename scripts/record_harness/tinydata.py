"""A tiny on-disk dataset in the records' layout, from a `golf data demo` folder.

The demo's text (decoded from its shards) trains a SentencePiece BPE tokenizer of the
vocabulary a record needs (identity normalisation, so the model file stays small), then
`fineweb_train_000000.bin` / `fineweb_val_000000.bin` are written in the Parameter Golf
shard format (256 int32 header: magic 20240520, version 1, count; uint16 tokens) next to
`fineweb_{V}_bpe.model`. Same demo folder and knobs, same bytes out.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import sentencepiece as spm

MAGIC, VERSION, BOS_ID = 20240520, 1, 1


def read_shard(path: Path) -> np.ndarray:
    header = np.fromfile(path, dtype="<i4", count=256)
    if header[0] != MAGIC or header[1] != VERSION:
        raise ValueError(f"{path}: not a Parameter Golf shard")
    return np.fromfile(path, dtype="<u2", count=int(header[2]), offset=1024)


def write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (MAGIC, VERSION, tokens.size)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())


def _documents(demo: Path, split: str) -> list[str]:
    sp = spm.SentencePieceProcessor(model_file=str(demo / "tokenizer.model"))
    tokens = np.concatenate(
        [read_shard(Path(p)) for p in sorted(glob.glob(str(demo / f"*_{split}_*.bin")))]
    )
    starts = np.flatnonzero(tokens == BOS_ID).tolist() + [tokens.size]
    return [
        sp.decode(tokens[a + 1 : b].tolist()) for a, b in zip(starts[:-1], starts[1:], strict=True)
    ]


def build(demo: Path, out: Path, *, vocab: int, val_tokens: int, train_tokens: int) -> dict:
    """Write tokenizer + one train and one val shard to `out`; return their description."""
    out.mkdir(parents=True, exist_ok=True)
    model = out / f"fineweb_{vocab}_bpe.model"
    train_docs, val_docs = _documents(demo, "train"), _documents(demo, "val")
    if not model.exists():
        text = out / "train_text.txt"
        text.write_text("\n".join(d.replace("\n", " ") for d in train_docs), "utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(model.with_suffix("")),
            model_type="bpe",
            vocab_size=vocab,
            character_coverage=0.999,
            byte_fallback=True,
            split_digits=True,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            pad_id=0,
            bos_id=BOS_ID,
            eos_id=2,
            unk_id=3,
            hard_vocab_limit=True,
            num_threads=1,
            seed_sentencepiece_size=100000,
            input_sentence_size=0,
            minloglevel=2,
        )
        text.unlink()
        model.with_suffix(".vocab").unlink(missing_ok=True)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    if sp.vocab_size() != vocab:
        raise ValueError(f"tokenizer has {sp.vocab_size()} pieces, wanted {vocab}")

    def encode(docs: list[str], limit: int) -> np.ndarray:
        ids: list[int] = []
        for doc in docs:
            ids += [BOS_ID, *sp.encode(doc)]
            if len(ids) >= limit:
                break
        return np.asarray(ids[:limit], dtype=np.uint16)

    train, val = encode(train_docs, train_tokens), encode(val_docs, val_tokens)
    write_shard(out / "fineweb_train_000000.bin", train)
    write_shard(out / "fineweb_val_000000.bin", val)
    return {
        "path": str(out),
        "tokenizer": model.name,
        "vocab_size": vocab,
        "train_tokens": int(train.size),
        "val_tokens": int(val.size),
        "pid": os.getpid(),
    }


OPERATOR_EVERY = 7
"""Pieces whose id is a multiple of this stand in for CaseOps' case operators in the
synthetic sidecar: they count no bytes of the raw text."""


def write_sidecar(out: Path, tokenizer: Path) -> str:
    """`fineweb_val_bytes_000000.bin` beside the val shard in `out`: the CaseOps byte budget
    of every val token, in the shard layout (uint16 per token, aligned with the tokens).

    The tiny data has no case operators, so the budget is synthetic: the SentencePiece
    byte count of the token after the one before it (the records' LUT rule: byte pieces
    1, control pieces 0, a leading "▁" one space unless after a boundary), with the pieces
    whose id is a multiple of OPERATOR_EVERY counted as 0 bytes, as CaseOps' operators
    are. A scorer that counts bytes from the LUTs instead of the sidecar misses by far.
    """
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    n = sp.vocab_size()
    base = np.zeros(n, dtype=np.int64)
    space = np.zeros(n, dtype=bool)
    boundary = np.zeros(n, dtype=bool)
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            boundary[i] = True
        elif sp.is_byte(i):
            base[i] = 1
        else:
            piece = sp.id_to_piece(i)
            if piece.startswith("\u2581"):
                space[i], piece = True, piece[1:]
            base[i] = len(piece.encode("utf-8"))
    tokens = read_shard(out / "fineweb_val_000000.bin").astype(np.int64)
    prev = np.concatenate(([BOS_ID], tokens[:-1]))
    counts = base[tokens] + (space[tokens] & ~boundary[prev])
    counts[tokens % OPERATOR_EVERY == 0] = 0
    name = "fineweb_val_bytes_000000.bin"
    write_shard(out / name, counts)
    return name
