"""Malformed and hostile `.golf` artifacts, each derived from one valid artifact.

Every case names the exact `ArtifactError` subclass a reader with the given
decompression limit must raise. The artifact tests run the corpus against
`read_artifact`; the service reuses it to fuzz its upload endpoint. Nothing here runs a
payload: the pickles would create `marker` if anything ever unpickled them.
"""

import builtins
import copy
import gzip
import io
import json
import lzma
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from golf.formats.artifact import (
    METADATA_KEY,
    BadHeader,
    BadMetadata,
    ConfigInvalid,
    CorruptStream,
    DecompressionBomb,
    DtypeMismatch,
    MissingTensor,
    NonFinite,
    NotAnArtifact,
    OutOfRange,
    ShapeMismatch,
    Truncated,
    UnexpectedTensor,
    UnknownArch,
    UnsupportedVersion,
    VocabMismatch,
)
from golf.spec.errors import ArtifactError


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    error: type[ArtifactError]


class Trap:
    """Unpickling this calls open(marker, "w"), which leaves a file behind."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (self.marker, "w"))


@dataclass
class Payload:
    """A decoded artifact open for surgery: safetensors header dict plus its data bytes."""

    header: dict[str, Any]
    data: bytearray

    @classmethod
    def decode(cls, artifact: bytes) -> "Payload":
        blob = lzma.decompress(artifact)
        (n,) = struct.unpack("<Q", blob[:8])
        return cls(json.loads(blob[8 : 8 + n]), bytearray(blob[8 + n :]))

    def clone(self) -> "Payload":
        return Payload(copy.deepcopy(self.header), bytearray(self.data))

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(self.header["__metadata__"][METADATA_KEY])

    def with_meta(self, edit: Callable[[dict[str, Any]], object]) -> "Payload":
        p = self.clone()
        doc = p.meta
        edit(doc)
        p.header["__metadata__"][METADATA_KEY] = json.dumps(doc)
        return p

    def names(self, scheme: str) -> list[str]:
        return sorted(n for n, s in self.meta["quant"].items() if s == scheme)

    def view(self, key: str) -> torch.Tensor:
        """A writable tensor view of one stored tensor's bytes."""
        info = self.header[key]
        begin, end = info["data_offsets"]
        dtype = {"I8": torch.int8, "F16": torch.float16}[info["dtype"]]
        raw = memoryview(self.data)[begin:end]
        return torch.frombuffer(raw, dtype=dtype).view(info["shape"])

    def patched(self, key: str, index: int, value: float) -> "Payload":
        p = self.clone()
        p.view(key).view(-1)[index] = value
        return p

    def without(self, key: str) -> "Payload":
        """Drop one stored tensor and its bytes, shifting the later offsets."""
        p = self.clone()
        begin, end = p.header.pop(key)["data_offsets"]
        del p.data[begin:end]
        for name, info in p.header.items():
            if name != "__metadata__" and info["data_offsets"][0] >= end:
                info["data_offsets"] = [o - (end - begin) for o in info["data_offsets"]]
        return p

    def with_extra(self, key: str, values: torch.Tensor) -> "Payload":
        p = self.clone()
        raw = values.contiguous().view(torch.uint8).numpy().tobytes()
        dtype = {torch.int8: "I8", torch.float16: "F16"}[values.dtype]
        start = len(p.data)
        p.header[key] = {
            "dtype": dtype,
            "shape": list(values.shape),
            "data_offsets": [start, start + len(raw)],
        }
        p.data += raw
        return p

    def blob(self, header_bytes: bytes | None = None) -> bytes:
        head = header_bytes if header_bytes is not None else json.dumps(self.header).encode()
        head += b" " * (-len(head) % 8)
        return struct.pack("<Q", len(head)) + head + bytes(self.data)

    def encode(self, header_bytes: bytes | None = None) -> bytes:
        return xz(self.blob(header_bytes))


def xz(raw: bytes) -> bytes:
    return lzma.compress(raw, format=lzma.FORMAT_XZ, preset=1)


def set_at(path: list[str], value: object) -> Callable[[dict[str, Any]], None]:
    """An edit for `Payload.with_meta` (or a header dict) that sets one nested field."""

    def edit(doc: dict[str, Any]) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    return edit


def _zeros_xz(n: int) -> bytes:
    """An xz stream of n zero bytes, built in chunks so memory stays small."""
    enc = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=0)
    chunk = bytes(2**20)
    parts = [enc.compress(chunk) for _ in range(n // len(chunk))]
    parts.append(enc.compress(bytes(n % len(chunk))))
    return b"".join(parts) + enc.flush()


def _huge_dictionary(artifact: bytes) -> bytes:
    """Rewrite the first block header to ask for a 4 GiB LZMA2 dictionary (valid CRC)."""
    out = bytearray(artifact)
    start = 12
    size = (out[start] + 1) * 4
    flags = out[start + 1]
    pos = start + 2
    for bit in (0x40, 0x80):  # compressed / uncompressed size varints
        if flags & bit:
            while out[pos] & 0x80:
                pos += 1
            pos += 1
    assert out[pos] == 0x21 and out[pos + 1] == 1, "expected an LZMA2 filter"
    out[pos + 2] = 40  # dictionary size 4 GiB - 1
    crc = zlib.crc32(bytes(out[start : start + size - 4]))
    out[start + size - 4 : start + size] = struct.pack("<I", crc)
    return bytes(out)


def _torch_save(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _zip_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, data)
    return buf.getvalue()


def build_corpus(valid: bytes, marker: Path, limit: int) -> list[Case]:
    """At least 40 cases from `valid`, an artifact with int6, int8 and fp16 tensors.

    `limit` is the reader's decompression cap (the bomb inflates just past it).
    """
    p = Payload.decode(valid)
    int6, int8, fp16 = p.names("int6")[0], p.names("int8")[0], p.names("fp16")[0]
    mat = next(n for n in p.names("int6") if len(set(p.header[f"{n}.q"]["shape"])) == 2)
    q_shape = p.header[f"{mat}.q"]["shape"]
    blob = p.blob()
    trap = Trap(marker)
    keys = [k for k in p.header if k != "__metadata__"]
    first, second = sorted(keys, key=lambda k: p.header[k]["data_offsets"][0])[:2]

    def header_edit(edit: Callable[[dict[str, Any]], object]) -> bytes:
        q = p.clone()
        edit(q.header)
        return q.encode()

    def flip(data: bytes, at: int) -> bytes:
        out = bytearray(data)
        out[at] ^= 0x10
        return bytes(out)

    fp16_shape = p.header[fp16]["shape"]
    vector = next(n for n in p.names("fp16") if len(p.header[n]["shape"]) == 1)
    vocab = p.meta["config"]["vocab_size"]

    cases = [
        # --- not an artifact at all
        Case("empty", b"", NotAnArtifact),
        Case("text", b"hello, I am not a model\n", NotAnArtifact),
        Case("raw-safetensors", blob, NotAnArtifact),
        Case("gzip", gzip.compress(blob), NotAnArtifact),
        Case("zip", _zip_of("model.safetensors", blob), NotAnArtifact),
        Case("pickle-trap", pickle.dumps({"w": trap}), NotAnArtifact),
        Case("torch-save-trap", _torch_save({"w": trap, "m": {}}), NotAnArtifact),
        Case("xz-torch-save-trap", xz(_torch_save({"w": trap, "m": {}})), NotAnArtifact),
        Case("xz-pickle-trap", xz(pickle.dumps(trap)), NotAnArtifact),
        # --- the xz layer
        Case("truncated-in-magic", valid[:3], Truncated),
        Case("truncated-after-stream-header", valid[:12], Truncated),
        Case("truncated-half", valid[: len(valid) // 2], Truncated),
        Case("truncated-last-byte", valid[:-1], Truncated),
        Case("bitflip-middle", flip(valid, len(valid) // 2), CorruptStream),
        Case("bitflip-stream-flags", flip(valid, 7), CorruptStream),
        Case("trailing-garbage", valid + b"\x00junk", CorruptStream),
        Case("two-streams", valid + valid, CorruptStream),
        Case("bomb-zeros", _zeros_xz(limit + 2**20), DecompressionBomb),
        Case("bomb-dictionary", _huge_dictionary(valid), DecompressionBomb),
        # --- the safetensors header
        Case("payload-empty", xz(b""), Truncated),
        Case("payload-short", xz(blob[:5]), Truncated),
        Case("payload-cut-in-data", xz(blob[:-3]), Truncated),
        Case("header-length-huge", xz(struct.pack("<Q", 2**62) + blob[8:]), BadHeader),
        Case("header-length-past-end", xz(struct.pack("<Q", len(blob)) + blob[8:]), Truncated),
        Case("header-not-json", p.encode(b"{not json"), BadHeader),
        Case("header-not-utf8", p.encode(b'{"\xff\xfe": 1}'), BadHeader),
        Case("header-is-list", p.encode(b"[1, 2, 3]"), BadHeader),
        Case("header-deep-nesting", p.encode(b"[" * 100_000), BadHeader),
        Case(
            "header-duplicate-key",
            p.encode(json.dumps(p.header)[:-1].encode() + b', "__metadata__": {}}'),
            BadHeader,
        ),
        Case("no-safetensors-metadata", header_edit(lambda h: h.pop("__metadata__")), BadHeader),
        Case(
            "dtype-not-whitelisted",
            header_edit(set_at([f"{mat}.q", "dtype"], "U8")),
            BadHeader,
        ),
        Case("dtype-object", header_edit(set_at([f"{mat}.q", "dtype"], "O")), BadHeader),
        Case(
            "shape-disagrees-with-bytes",
            header_edit(set_at([f"{mat}.q", "shape"], [q_shape[0], q_shape[1] + 1])),
            BadHeader,
        ),
        Case("shape-negative", header_edit(set_at([f"{mat}.q", "shape"], [-1, -1])), BadHeader),
        Case("shape-float", header_edit(set_at([f"{mat}.q", "shape"], [1.5, 2])), BadHeader),
        Case(
            "offsets-overlap",
            header_edit(
                set_at(
                    [second, "data_offsets"],
                    [
                        p.header[second]["data_offsets"][0] - 1,
                        p.header[second]["data_offsets"][1] - 1,
                    ],
                )
            ),
            BadHeader,
        ),
        Case(
            "offsets-out-of-bounds",
            header_edit(
                set_at(
                    [first, "data_offsets"],
                    [len(p.data) + 64, len(p.data) + 64 + p.header[first]["data_offsets"][1]],
                )
            ),
            BadHeader,
        ),
        Case("offsets-reversed", header_edit(set_at([first, "data_offsets"], [5, 0])), BadHeader),
        Case(
            "entry-extra-field",
            header_edit(set_at([first, "evil"], "x")),
            BadHeader,
        ),
        # --- the golf metadata
        Case(
            "metadata-key-missing",
            header_edit(set_at(["__metadata__"], {"other": "{}"})),
            BadMetadata,
        ),
        Case(
            "metadata-not-json",
            header_edit(set_at(["__metadata__", METADATA_KEY], "{'python': 'dict'}")),
            BadMetadata,
        ),
        Case(
            "metadata-deep-nesting",
            header_edit(set_at(["__metadata__", METADATA_KEY], "[" * 100_000)),
            BadMetadata,
        ),
        Case(
            "metadata-missing-tokenizer",
            p.with_meta(lambda d: d.pop("tokenizer")).encode(),
            BadMetadata,
        ),
        Case("metadata-extra-key", p.with_meta(set_at(["surprise"], 1)).encode(), BadMetadata),
        Case("metadata-wrong-format", p.with_meta(set_at(["format"], "x")).encode(), BadMetadata),
        Case("version-missing", p.with_meta(lambda d: d.pop("version")).encode(), BadMetadata),
        Case("version-string", p.with_meta(set_at(["version"], "1")).encode(), BadMetadata),
        Case("version-unknown", p.with_meta(set_at(["version"], 2)).encode(), UnsupportedVersion),
        Case("arch-unknown", p.with_meta(set_at(["arch"], "mamba-130m")).encode(), UnknownArch),
        Case(
            "arch-not-string", p.with_meta(set_at(["arch"], ["gpt-sp1024"])).encode(), BadMetadata
        ),
        Case(
            "sha256-malformed",
            p.with_meta(set_at(["tokenizer", "sha256"], "abc")).encode(),
            BadMetadata,
        ),
        Case("code-bytes-negative", p.with_meta(set_at(["code_bytes"], -1)).encode(), BadMetadata),
        Case("scheme-unknown", p.with_meta(set_at(["quant", int6], "int4")).encode(), BadMetadata),
        Case(
            "provenance-seeds-not-ints",
            p.with_meta(set_at(["provenance", "seeds"], ["one"])).encode(),
            BadMetadata,
        ),
        Case("config-not-object", p.with_meta(set_at(["config"], [1])).encode(), BadMetadata),
        Case(
            "config-unknown-field",
            p.with_meta(set_at(["config", "evil"], 1)).encode(),
            ConfigInvalid,
        ),
        Case(
            "config-bad-value",
            p.with_meta(set_at(["config", "num_layers"], -3)).encode(),
            ConfigInvalid,
        ),
        Case(
            "config-layers-huge",
            p.with_meta(set_at(["config", "num_layers"], 10**12)).encode(),
            ConfigInvalid,
        ),
        Case(
            "config-layers-as-string",
            p.with_meta(set_at(["config", "num_layers"], "1000000000000")).encode(),
            ConfigInvalid,
        ),
        Case(
            "config-overflow",
            p.with_meta(set_at(["config", "mlp_mult"], 1e308)).encode(),
            ConfigInvalid,
        ),
        Case(
            "config-dims-overflow",
            p.with_meta(set_at(["config", "model_dim"], 2**40)).encode(),
            ConfigInvalid,
        ),
        Case(
            "vocab-mismatch",
            p.with_meta(set_at(["tokenizer", "vocab_size"], vocab + 1)).encode(),
            VocabMismatch,
        ),
        # --- the tensor set, dtypes and shapes
        Case(
            "quant-map-missing",
            p.with_meta(lambda d: d["quant"].pop(int6)).encode(),
            MissingTensor,
        ),
        Case(
            "quant-map-extra",
            p.with_meta(set_at(["quant", "blocks.99.attn.c_q.weight"], "int6")).encode(),
            UnexpectedTensor,
        ),
        Case("stored-missing-q", p.without(f"{int6}.q").encode(), MissingTensor),
        Case("stored-missing-passthrough", p.without(fp16).encode(), MissingTensor),
        Case(
            "stored-extra",
            p.with_extra("backdoor.weight", torch.zeros(4, dtype=torch.float16)).encode(),
            UnexpectedTensor,
        ),
        Case(
            "scheme-switched",
            p.with_meta(set_at(["quant", int6], "fp16")).encode(),
            MissingTensor,
        ),
        Case(
            "int-scheme-on-vector",
            p.with_meta(set_at(["quant", vector], "int8")).encode(),
            ShapeMismatch,
        ),
        Case(
            "dtype-lie",
            header_edit(
                lambda h: h[f"{mat}.q"].update(dtype="F16", shape=[q_shape[0], q_shape[1] // 2])
            ),
            DtypeMismatch,
        ),
        Case(
            "shape-lie-flattened",
            header_edit(set_at([f"{mat}.q", "shape"], [q_shape[0] * q_shape[1]])),
            ShapeMismatch,
        ),
        Case(
            "scale-shape-lie",
            header_edit(lambda h: h[f"{mat}.scale"].update(shape=[1, q_shape[0]])),
            ShapeMismatch,
        ),
        Case(
            "passthrough-shape-lie",
            header_edit(set_at([fp16, "shape"], [1, *fp16_shape])),
            ShapeMismatch,
        ),
        # --- values
        Case("scale-nan", p.patched(f"{int6}.scale", 0, float("nan")).encode(), NonFinite),
        Case("scale-inf", p.patched(f"{int8}.scale", 1, float("inf")).encode(), NonFinite),
        Case("scale-zero", p.patched(f"{int6}.scale", 0, 0.0).encode(), OutOfRange),
        Case("scale-negative", p.patched(f"{int8}.scale", 0, -0.5).encode(), OutOfRange),
        Case("int6-value-32", p.patched(f"{int6}.q", 3, 32).encode(), OutOfRange),
        Case("int6-value-minus-32", p.patched(f"{int6}.q", 0, -32).encode(), OutOfRange),
        Case("int8-value-minus-128", p.patched(f"{int8}.q", 0, -128).encode(), OutOfRange),
        Case("passthrough-inf", p.patched(fp16, 0, float("inf")).encode(), NonFinite),
        Case("passthrough-nan", p.patched(fp16, 0, float("nan")).encode(), NonFinite),
    ]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return cases
