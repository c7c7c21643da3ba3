"""Per-group streams (`PGRP`, 2026-04-27_SP8192_LQER_…): int8 groups under lrzip, the rest
under brotli, read back into the `{w,m}` container.

Layout: `PGRP`, u32 stream count, u32 length per stream, the streams. Streams 0..6 are
the int8 `.q` tensors of one group each (`GROUP_ORDER`: the embedding, then per-block
c_k, c_q, c_v, proj, fc, mlp.proj across layers), concatenated in layer order, each
matrix stored transposed after its rows were reordered (groups in `SIMSORT`); an empty
stream is an absent group. Stream 7 is brotli of `torch.save({"r": other tensors, "m":
quant meta, "s": {group: [shape, ...]}})`; stream 8 is brotli of the row orders (uint16
per row, the SIMSORT groups' matrices in order), possibly empty. Every stream is decoded
under the caps of golf.formats.compress, the pickle only by golf.formats.torchzip, and
every size and permutation is checked before use.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import torch

from golf.formats.artifact import CorruptStream, NotAnArtifact, ShapeMismatch, Truncated
from golf.formats.compress import decompress
from golf.formats.torchzip import load_weights

MAGIC = b"PGRP"
GROUP_ORDER = (
    "_tok_emb.weight.q",
    "attn.c_k.weight.q",
    "attn.c_q.weight.q",
    "attn.c_v.weight.q",
    "attn.proj.weight.q",
    "mlp.fc.weight.q",
    "mlp.proj.weight.q",
)
SIMSORT = frozenset({"_tok_emb.weight.q", "attn.c_q.weight.q", "mlp.fc.weight.q"})


def split_streams(blob: bytes) -> list[bytes]:
    """The streams of a PGRP blob; Truncated when the lengths run past its end."""
    if len(blob) < 8 or not blob.startswith(MAGIC):
        raise NotAnArtifact("not a PGRP per-group blob")
    (n,) = struct.unpack("<I", blob[4:8])
    if n != len(GROUP_ORDER) + 2:
        raise CorruptStream(f"PGRP holds {n} streams, expected {len(GROUP_ORDER) + 2}")
    head = 8 + 4 * n
    if len(blob) < head:
        raise Truncated(f"PGRP header ends after {len(blob)} bytes")
    lengths = struct.unpack(f"<{n}I", blob[8:head])
    if head + sum(lengths) != len(blob):
        raise Truncated(
            f"PGRP streams declare {head + sum(lengths)} bytes, the file has {len(blob)}"
        )
    streams, offset = [], head
    for length in lengths:
        streams.append(blob[offset : offset + length])
        offset += length
    return streams


def read_pergroup(blob: bytes, *, limit: int, max_tensors: int) -> dict[str, Any]:
    """The `{"w","m"}` object a PGRP blob stores."""
    streams = split_streams(blob)
    rest = load_weights(
        decompress(streams[len(GROUP_ORDER)], "brotli", limit), limit=limit, max_tensors=max_tensors
    )
    if not (isinstance(rest, dict) and {"r", "m", "s"} <= set(rest)):
        raise NotAnArtifact('PGRP remainder is not a {"r","m","s"} dict')
    w, meta, manifest = rest["r"], rest["m"], rest["s"]
    if not (isinstance(w, dict) and isinstance(meta, dict) and isinstance(manifest, dict)):
        raise NotAnArtifact('PGRP remainder "r", "m", "s" must be dicts')
    perms_raw = streams[len(GROUP_ORDER) + 1]
    perms = (
        np.frombuffer(decompress(perms_raw, "brotli", limit), dtype="<u2") if perms_raw else None
    )
    perm_at, total = 0, 0
    for key, stream in zip(GROUP_ORDER, streams, strict=False):
        if not stream:
            continue
        raw = np.frombuffer(decompress(stream, "lrzip", limit), dtype=np.int8)
        total += raw.size
        if total > limit:
            raise CorruptStream(f"PGRP groups decode to more than {limit} bytes")
        shapes = _shapes(manifest, key)
        names = (
            [key[1:]] if key.startswith("_") else [f"blocks.{i}.{key}" for i in range(len(shapes))]
        )
        if sum(int(np.prod(s)) for s in shapes) != raw.size:
            raise ShapeMismatch(f"PGRP group {key}: {raw.size} bytes for shapes {shapes}")
        offset = 0
        for name, shape in zip(names, shapes, strict=True):
            size = int(np.prod(shape))
            chunk = raw[offset : offset + size]
            offset += size
            if len(shape) == 2:
                rows, cols = shape
                chunk = chunk.reshape(cols, rows).T
                if key in SIMSORT:
                    if perms is None or perm_at + rows > perms.size:
                        raise ShapeMismatch(f"PGRP tensor {name}: row order missing")
                    order = perms[perm_at : perm_at + rows].astype(np.int64)
                    perm_at += rows
                    if not np.array_equal(np.sort(order), np.arange(rows)):
                        raise CorruptStream(f"PGRP tensor {name}: row order is no permutation")
                    inverse = np.empty(rows, dtype=np.int64)
                    inverse[order] = np.arange(rows)
                    chunk = chunk[inverse]
            if len(w) >= max_tensors:
                raise NotAnArtifact(f"PGRP holds more than {max_tensors} tensors")
            w[name] = torch.from_numpy(np.ascontiguousarray(chunk).reshape(shape))
    return {"w": w, "m": meta}


def _shapes(manifest: dict, key: str) -> list[tuple[int, ...]]:
    shapes = manifest.get(key)
    if not isinstance(shapes, list | tuple) or not shapes:
        raise ShapeMismatch(f"PGRP group {key}: no shapes in the manifest")
    out = []
    for s in shapes:
        if not (isinstance(s, list | tuple) and 1 <= len(s) <= 2) or not all(
            isinstance(d, int) and 0 < d <= 1 << 24 for d in s
        ):
            raise ShapeMismatch(f"PGRP group {key}: bad shape {s!r:.60}")
        out.append(tuple(s))
    return out
