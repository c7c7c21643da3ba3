"""Hostile and malformed record artifacts for the board readers (golf.formats.detect).

Each case names the ArtifactError subclass `read_reference(data, limit=LIMIT,
max_tensors=MAX_TENSORS)` must raise. Nothing here runs a payload: the pickles would
create `marker` if anything ever unpickled them.
"""

from __future__ import annotations

import io
import lzma
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import brotli
import torch
import zstandard

from golf.formats.artifact import (
    BadMetadata,
    CorruptStream,
    DecompressionBomb,
    DtypeMismatch,
    MissingTensor,
    NotAnArtifact,
    ShapeMismatch,
    TooLarge,
    Truncated,
    UnexpectedTensor,
)
from golf.formats.compress import BSHF_MAGIC
from golf.formats.torchzip import TooManyTensors
from golf.spec.errors import ArtifactError
from tests.artifact_corpus import Trap

LIMIT = 1 << 20
MAX_TENSORS = 64


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    error: type[ArtifactError]


def torch_save(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def int8_clean(rows: int = 8, cols: int = 16) -> dict:
    """A small, valid int8_clean_per_row_v1 object (one matrix, two passthrough tensors)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-127, 128, (rows, cols), generator=g, dtype=torch.int8)
    return {
        "__quant_format__": "int8_clean_per_row_v1",
        "quantized": {"w": q},
        "scales": {"w": (torch.rand(rows, generator=g) / 100 + 1e-3).half()},
        "dtypes": {"w": "float32"},
        "passthrough": {"g": torch.ones(cols), "h": torch.ones(cols).half()},
        "passthrough_orig_dtypes": {"h": "float32"},
        "qmeta": {"w": {"scheme": "per_row", "axis": 0}},
    }


def wm(rows: int = 8, cols: int = 16) -> dict:
    """A small, valid {"w","m"} object (int6 matrix + fp16 passthrough)."""
    g = torch.Generator().manual_seed(1)
    q = torch.randint(-31, 32, (rows, cols), generator=g, dtype=torch.int8)
    return {
        "w": {"a.q": q, "a.scale": torch.rand(rows, generator=g).half(), "b": torch.ones(3).half()},
        "m": {"a": {"type": "int6"}, "b": "passthrough"},
    }


def pack_trits(trits) -> bytes:
    """Trits in {-1, 0, 1} as five base-3 digits a byte, least significant first (the
    ternary record's layout), the last byte padded with digit 0."""
    import numpy as np

    d = np.asarray(trits, dtype=np.int64).reshape(-1) + 1
    d = np.concatenate([d, np.zeros(-len(d) % 5, dtype=np.int64)]).reshape(-1, 5)
    return (d * 3 ** np.arange(5)).sum(1).astype(np.uint8).tobytes()


def ternary(rows: int = 4, cols: int = 20, group: int = 8) -> dict:
    """A small, valid ternary-record object: one base-3 matrix (cols padded to whole
    groups), one bitmask matrix, an fp8 and an fp16 tensor."""
    import numpy as np

    g = torch.Generator().manual_seed(3)
    padded = -(-cols // group) * group
    n = rows * padded
    trits = torch.randint(-1, 2, (rows, padded), generator=g, dtype=torch.int8)
    trits[:, cols:] = 0
    mask = trits.reshape(-1).numpy() != 0
    signs = trits.reshape(-1).numpy()[mask] > 0
    scale = (torch.rand(n // group, generator=g) / 10 + 0.01).half()
    base = {"shape": [rows, cols], "padded_cols": padded, "group_size": group, "n_trits": n}
    return {
        "a.weight": {"type": "ternary", "packed": pack_trits(trits), "scale": scale, **base},
        "b.weight": {
            "type": "ternary_bitmask",
            "packed": np.packbits(mask).tobytes() + np.packbits(signs).tobytes(),
            "scale": scale.clone(),
            **base,
            "orig_shape": [rows, 2, cols // 2],
        },
        "emb.weight": {
            "type": "fp8",
            "data": torch.randn(6, 4, generator=g).to(torch.float8_e4m3fn),
        },
        "gain": {"type": "fp16", "data": torch.rand(4, generator=g).half()},
    }


def shuffle(data: bytes, stride: int = 2, header_bytes: int = 1) -> bytes:
    """The records' BSHF byte shuffle (1-byte stride, or 2-byte as in 2026-03-31)."""
    out = b"".join(data[s::stride] for s in range(stride))
    return BSHF_MAGIC + stride.to_bytes(header_bytes, "little") + out


def zstd(data: bytes, *, content_size: bool = True) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=content_size).compress(data)


def lrzip(data: bytes) -> bytes | None:
    """Debian lrzip's output for `data`, or None when the binary is missing."""
    binary = shutil.which("lrzip")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "x.bin"
        src.write_bytes(data)
        subprocess.run([binary, "-q", "-g", "-o", f"{src}.lrz", str(src)], check=True)
        return Path(f"{src}.lrz").read_bytes()


COMPRESSORS = {
    "zlib": lambda d: zlib.compress(d, 9),
    "xz": lambda d: lzma.compress(d, preset=1),
    "zstd": zstd,
    "brotli": lambda d: brotli.compress(d, quality=5),
}


def _with_member(raw: bytes, edit) -> bytes:
    """Rewrite a torch.save zip, passing each (name, bytes) through `edit`."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            name, data, method = edit(info.filename, src.read(info.filename))
            out.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def build_corpus(marker: Path) -> list[Case]:
    cases: list[Case] = []
    trap = torch_save({"w": {}, "m": Trap(marker)})
    clean = torch_save(int8_clean())
    for name, comp in COMPRESSORS.items():
        cases.append(Case(f"pickle that imports ({name})", comp(trap), NotAnArtifact))
        cases.append(Case(f"truncated {name}", comp(clean)[: len(comp(clean)) // 2], Truncated))
        cases.append(Case(f"{name} bomb", comp(bytes(LIMIT + 1)), DecompressionBomb))
    cases.append(
        Case("pickle that imports (brotli+BSHF)", brotli.compress(shuffle(trap)), NotAnArtifact)
    )
    cases.append(
        Case(
            "zstd bomb, no content size",
            zstd(bytes(LIMIT + 1), content_size=False),
            DecompressionBomb,
        )
    )
    cases.append(
        Case("zstd truncated, no content size", zstd(clean, content_size=False)[:-9], Truncated)
    )
    cases.append(Case("zlib trailing bytes", zlib.compress(clean) + b"junk", CorruptStream))
    cases.append(Case("not any format", b"hello world, this is not an artifact", NotAnArtifact))
    cases.append(Case("empty", b"", NotAnArtifact))
    cases.append(Case("per-group streams, no streams", b"PGRP" + bytes(64), CorruptStream))
    cases.append(
        Case(
            "BSHF of no container", brotli.compress(BSHF_MAGIC + b"\x02" + bytes(64)), CorruptStream
        )
    )
    cases.append(Case("legacy pickle", zlib.compress(b"\x80\x02}q\x00."), NotAnArtifact))
    deflated = _with_member(clean, lambda n, d: (n, d, zipfile.ZIP_DEFLATED))
    cases.append(Case("zip member compressed", zlib.compress(deflated), NotAnArtifact))

    def short_storage(n: str, d: bytes):
        return (
            n,
            (d[: len(d) // 2] if "/data/" in n and not n.endswith(".pkl") else d),
            zipfile.ZIP_STORED,
        )

    cases.append(
        Case(
            "shape lies about its storage",
            zlib.compress(_with_member(clean, short_storage)),
            NotAnArtifact,
        )
    )
    many = {"w": {f"t{i}": torch.zeros(1).half() for i in range(MAX_TENSORS + 1)}, "m": {}}
    cases.append(Case("too many tensors", zlib.compress(torch_save(many)), TooManyTensors))
    cases.append(
        Case("unknown container", zlib.compress(torch_save({"x": torch.zeros(1)})), NotAnArtifact)
    )
    cases.append(
        Case(
            "unknown quant format",
            zlib.compress(torch_save({"__quant_format__": "v9"})),
            NotAnArtifact,
        )
    )

    def clean_with(edit) -> bytes:
        obj = int8_clean()
        edit(obj)
        return zlib.compress(torch_save(obj))

    cases.append(
        Case(
            "int8_clean scale rows lie",
            clean_with(lambda o: o["scales"].update(w=torch.ones(3).half())),
            ShapeMismatch,
        )
    )
    cases.append(
        Case(
            "int8_clean float 'quantized'",
            clean_with(lambda o: o["quantized"].update(w=torch.zeros(8, 16))),
            DtypeMismatch,
        )
    )
    cases.append(
        Case("int8_clean scale missing", clean_with(lambda o: o["scales"].clear()), MissingTensor)
    )
    cases.append(
        Case(
            "int8_clean restore dtype int",
            clean_with(lambda o: o["dtypes"].update(w="int64")),
            DtypeMismatch,
        )
    )
    cases.append(
        Case(
            "int8_clean dtypes not strings",
            clean_with(lambda o: o.update(dtypes={"w": 3})),
            BadMetadata,
        )
    )
    cases.append(
        Case(
            "int8_clean stray scale",
            clean_with(lambda o: o["scales"].update(z=torch.ones(2))),
            UnexpectedTensor,
        )
    )

    def wm_with(edit) -> bytes:
        obj = wm()
        edit(obj)
        return zstd(torch_save(obj))

    cases.append(
        Case(
            "{w,m} scale rows lie",
            wm_with(lambda o: o["w"].update({"a.scale": torch.ones(2).half()})),
            ShapeMismatch,
        )
    )
    cases.append(
        Case(
            "{w,m} unknown quant type",
            wm_with(lambda o: o["m"].update(a={"type": "int12"})),
            BadMetadata,
        )
    )
    cases.append(Case("{w,m} tensor missing", wm_with(lambda o: o["w"].pop("a.q")), MissingTensor))
    cases.append(
        Case(
            "{w,m} undescribed tensor",
            wm_with(lambda o: o["w"].update(z=torch.ones(1))),
            UnexpectedTensor,
        )
    )

    def ternary_with(edit) -> bytes:
        obj = ternary()
        edit(obj)
        return lzma.compress(torch_save(obj))

    def put(key, **kw):
        return lambda o: o[key].update(kw)

    for name, edit, error in (
        (
            "packed bytes truncated",
            lambda o: o["a.weight"].update(packed=o["a.weight"]["packed"][:-1]),
            ShapeMismatch,
        ),
        ("n_trits lies", put("a.weight", n_trits=95), ShapeMismatch),
        ("padded_cols lies", put("a.weight", padded_cols=20), ShapeMismatch),
        ("scale count lies", put("a.weight", scale=torch.ones(3).half()), ShapeMismatch),
        ("scale not fp16", put("a.weight", scale=torch.ones(12)), ShapeMismatch),
        (
            "byte is not five trits",
            lambda o: o["a.weight"].update(packed=b"\xff" * 20),
            BadMetadata,
        ),
        (
            "bitmask signs short",
            lambda o: o["b.weight"].update(packed=o["b.weight"]["packed"][:-1]),
            ShapeMismatch,
        ),
        ("bitmask mask short", put("b.weight", packed=b"\x00"), ShapeMismatch),
        ("orig_shape lies", put("b.weight", orig_shape=[4, 3, 7]), ShapeMismatch),
        ("shape of 2^30 elements", put("a.weight", shape=[1 << 15, 1 << 15]), TooLarge),
        ("group_size 0", put("a.weight", group_size=0), BadMetadata),
        ("shape is a string", put("a.weight", shape="4x20"), BadMetadata),
        ("packed missing", lambda o: o["a.weight"].pop("packed"), MissingTensor),
        ("unknown type", put("gain", type="int3"), BadMetadata),
        ("fp8 data in float32", put("emb.weight", data=torch.zeros(6, 4)), DtypeMismatch),
        ("fp16 data is bytes", put("gain", data=b"\x00\x00"), BadMetadata),
    ):
        cases.append(Case(f"ternary {name}", ternary_with(edit), error))
    lrz = lrzip(clean)
    if lrz is not None:
        cases.append(Case("truncated lrzip", lrz[: len(lrz) // 2], CorruptStream))
        bomb = lrzip(bytes(LIMIT + 1))
        assert bomb is not None
        cases.append(Case("lrzip bomb", bomb, DecompressionBomb))
        cases.append(Case("pickle that imports (lrzip)", lrzip(trap) or b"", NotAnArtifact))
        q = {"blocks.0.attn.c_q.weight.q": torch.ones(4, 4, dtype=torch.int8)}
        blob = pergroup(q, {})
        assert blob is not None
        cases.append(Case("per-group streams truncated", blob[:-5], Truncated))
        evil = bytearray(blob)
        head = 8 + 4 * 9
        lengths = list(struct.unpack("<9I", blob[8:head]))
        trap_stream = brotli.compress(trap)
        rest_at = head + sum(lengths[:7])
        evil[rest_at : rest_at + lengths[7]] = trap_stream
        lengths[7] = len(trap_stream)
        evil[8:head] = struct.pack("<9I", *lengths)
        cases.append(Case("pickle that imports (per-group remainder)", bytes(evil), NotAnArtifact))
        lengths = list(struct.unpack("<9I", blob[8:head]))
        twice = brotli.compress(bytes(8))  # row order 0, 0, 0, 0: not a permutation
        bad = bytearray(blob[: head + sum(lengths[:8])]) + twice
        lengths[8] = len(twice)
        bad[8:head] = struct.pack("<9I", *lengths)
        cases.append(Case("per-group row order not a permutation", bytes(bad), CorruptStream))
    return cases


def pergroup(w: dict, m: dict, *, order_rows: bool = True) -> bytes | None:
    """A PGRP blob of a {w,m} object, laid out as golf.formats.pergroup documents (embedding
    and per-block int8 .q tensors by group under lrzip, rows of the SIMSORT groups
    reordered by reversing them, the rest and the row orders under brotli)."""
    import struct

    import numpy as np

    from golf.formats.pergroup import GROUP_ORDER, MAGIC, SIMSORT

    if shutil.which("lrzip") is None:
        return None
    rest = dict(w)
    streams, perms, manifest = [], b"", {}
    for key in GROUP_ORDER:
        if key.startswith("_"):
            names = [key[1:]] if key[1:] in w else []
        else:
            names = sorted(
                (n for n in w if n.startswith("blocks.") and n.split(".", 2)[2] == key),
                key=lambda n: int(n.split(".")[1]),
            )
        if not names:
            streams.append(b"")
            continue
        blob = b""
        manifest[key] = []
        for name in names:
            arr = rest.pop(name).numpy()
            manifest[key].append(list(arr.shape))
            if arr.ndim == 2:
                if key in SIMSORT and order_rows:
                    order = np.arange(arr.shape[0] - 1, -1, -1, dtype=np.uint16)
                    perms += order.tobytes()
                    arr = arr[order]
                arr = np.ascontiguousarray(arr.T)
            blob += arr.tobytes()
        streams.append(lrzip(blob) or b"")
    streams.append(brotli.compress(torch_save({"r": rest, "m": m, "s": manifest})))
    streams.append(brotli.compress(perms) if perms else b"")
    head = (
        MAGIC
        + struct.pack("<I", len(streams))
        + b"".join(struct.pack("<I", len(s)) for s in streams)
    )
    return head + b"".join(streams)
