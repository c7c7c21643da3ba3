"""The `.golf` artifact: xz (LZMA preset 9e) of a safetensors blob whose `__metadata__`
holds one JSON document under the key "golf".

Stored tensors: a quantized tensor NAME is `NAME.q` (int8) plus `NAME.scale` (fp16, one
per row); an fp16 passthrough tensor is stored as `NAME`. The JSON document carries
the format version, the architecture (golf.models.registry; absent in older files, which
mean the default), the model config, the tokenizer sha256 and vocab size, the scheme
of every tensor, provenance and the declared code bytes.

Reading is safe by construction: no pickle, decompression stops past a limit, and the
safetensors header, the metadata, the config and every tensor's name, dtype, shape and
values are checked before a tensor is used. Each failure is a typed `ArtifactError`
whose one-line message names the field or tensor.
"""

import hashlib
import json
import lzma
import math
import os
import struct
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from golf import __version__
from golf.formats.quant import (
    PASSTHROUGH_MAX_NUMEL,
    QMAX,
    QTensor,
    Scheme,
    quantize_state_dict,
)
from golf.models.gpt import GPT
from golf.models.registry import (
    DEFAULT_ARCH,
    UnknownArchitecture,
    expected_shapes,
    model_class,
    parse_config,
    roles_for,
)
from golf.spec.config import ModelConfig
from golf.spec.errors import ArtifactError, ConfigError
from golf.spec.records import ArtifactSummary

FORMAT_VERSION = 1
METADATA_KEY = "golf"
BUDGET_BYTES = 16_000_000
DEFAULT_MAX_DECOMPRESSED = 256 * 2**20
XZ_MAGIC = b"\xfd7zXZ\x00"
XZ_PRESET = 9 | lzma.PRESET_EXTREME
# Preset 9 decodes with a 64 MiB dictionary; a stream asking for more is hostile.
XZ_MEMLIMIT = 256 * 2**20
MAX_HEADER_BYTES = 16 * 2**20
# Building the expected tensor set costs time per layer; no 16 MB model has this many.
MAX_LAYERS = 512
# safetensors dtype tag -> (torch dtype, bytes per element); nothing else is accepted.
DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "I8": (torch.int8, 1),
    "F16": (torch.float16, 2),
    "F32": (torch.float32, 4),
}
# Float schemes: values alone, stored in this safetensors dtype.
FLOAT_SCHEMES = {Scheme.FP16: "F16", Scheme.FP32: "F32"}


class NotAnArtifact(ArtifactError):
    """The bytes are not an xz stream holding safetensors (empty, pickle, zip, ...)."""


class TooLarge(ArtifactError):
    """The file itself is larger than the decompression limit allows."""


class Truncated(ArtifactError):
    """The xz stream or the safetensors blob ends early."""


class CorruptStream(ArtifactError):
    """The xz stream fails its integrity checks or has trailing bytes."""


class DecompressionBomb(ArtifactError):
    """The stream inflates past the limit or asks the decoder for too much memory."""


class BadHeader(ArtifactError):
    """The safetensors header is malformed: length, JSON, dtypes, shapes or offsets."""


class BadMetadata(ArtifactError):
    """The golf metadata document is missing, not JSON, or lacks or mistypes a field."""


class UnsupportedVersion(BadMetadata):
    """The metadata declares a format version this reader does not know."""


class UnknownArch(BadMetadata):
    """The metadata names an architecture no model class is registered for."""


class VocabMismatch(BadMetadata):
    """The metadata's vocab size disagrees with the model config's."""


class ConfigInvalid(ArtifactError):
    """The model config in the metadata is rejected by ModelConfig."""


class TensorError(ArtifactError):
    """A stored tensor does not fit the config and its scheme."""


class MissingTensor(TensorError):
    """The config or the quant map needs a tensor the file lacks."""


class UnexpectedTensor(TensorError):
    """The file or the quant map holds a tensor the model does not have."""


class ShapeMismatch(TensorError):
    """A stored shape differs from the one the config and scheme imply."""


class DtypeMismatch(TensorError):
    """A stored dtype differs from its scheme's (int8 values, fp16 scales and floats)."""


class NonFinite(TensorError):
    """A scale or passthrough value is NaN or infinite."""


class OutOfRange(TensorError):
    """An integer lies outside its scheme's range, or a scale is not positive."""


class Provenance(BaseModel):
    """Where the weights came from; reviewers read it to judge contested techniques."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    trainer_version: str = f"golf-eval {__version__}"
    seeds: tuple[int, ...] = ()
    ttt_data_source: str | None = None  # "train", "val", ... None: no TTT
    ttt_epochs: int = Field(default=0, ge=0)
    gptq_calibration_source: str | None = None  # "train", "val", "ar-selfgen", ... None: RTN
    notes: dict[str, str] = Field(default_factory=dict)


class TokenizerRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    vocab_size: int = Field(gt=0)


class ArtifactMeta(BaseModel):
    """The JSON document stored under `__metadata__["golf"]`."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    format: str = Field(pattern="^golf$")
    version: int
    arch: str = DEFAULT_ARCH  # golf.models.registry name; files without it mean the default
    config: dict[str, Any]
    tokenizer: TokenizerRef
    quant: dict[str, Scheme]
    provenance: Provenance
    code_bytes: int = Field(ge=0)


@dataclass(frozen=True)
class Artifact:
    """A validated artifact: every tensor fits the config, its scheme and its range."""

    sha256: str
    n_bytes: int
    config: ModelConfig
    metadata: ArtifactMeta
    tensors: dict[str, QTensor]

    @property
    def schemes(self) -> dict[str, Scheme]:
        return {name: qt.scheme for name, qt in self.tensors.items()}

    def dequantize(self) -> dict[str, Tensor]:
        return {name: qt.dequantize() for name, qt in self.tensors.items()}

    def summary(self) -> ArtifactSummary:
        """What `golf inspect --json` prints and the service stores, budget verdict included."""
        code = self.metadata.code_bytes
        total = self.n_bytes + code
        return ArtifactSummary(
            sha256=self.sha256,
            format_version=self.metadata.version,
            arch=self.metadata.arch,
            config=self.config.model_dump(mode="json"),
            tensors=len(self.tensors),
            parameters=sum(qt.values.numel() for qt in self.tensors.values()),
            schemes={str(k): n for k, n in sorted(Counter(self.schemes.values()).items())},
            artifact_bytes=self.n_bytes,
            code_bytes=code,
            total_bytes=total,
            budget_bytes=BUDGET_BYTES,
            headroom_bytes=BUDGET_BYTES - total,
            verdict="fits" if total <= BUDGET_BYTES else "over budget",
            tokenizer_sha256=self.metadata.tokenizer.sha256,
            vocab_size=self.metadata.tokenizer.vocab_size,
            provenance=self.metadata.provenance.model_dump(mode="json"),
        )


# ---------------------------------------------------------------------------- writing


def encode_artifact(
    tensors: Mapping[str, QTensor],
    config: ModelConfig,
    *,
    tokenizer_sha256: str,
    vocab_size: int,
    provenance: Provenance | None = None,
    code_bytes: int = 0,
    arch: str = DEFAULT_ARCH,
) -> bytes:
    """The `.golf` bytes of already-quantized tensors (round-to-nearest or GPTQ).

    The inputs pass the same checks as a read, so a writer bug fails here, not at eval.
    """
    meta = _meta_from_json(
        json.dumps(
            {
                "format": METADATA_KEY,
                "version": FORMAT_VERSION,
                "arch": arch,
                "config": config.model_dump(mode="json"),
                "tokenizer": {"sha256": tokenizer_sha256, "vocab_size": vocab_size},
                "quant": {name: str(qt.scheme) for name, qt in tensors.items()},
                "provenance": (provenance or Provenance()).model_dump(mode="json"),
                "code_bytes": code_bytes,
            }
        )
    )
    _check_vocab(meta, config)
    flat = _flatten(tensors)
    stored = {key: (_dtype_tag(t), tuple(t.shape)) for key, t in flat.items()}
    _check_layout(meta.quant, stored, _model_shapes(config, meta.arch))
    for name, qt in tensors.items():
        _check_values(name, qt)
    doc = meta.model_dump_json()
    blob = st_save({k: t.contiguous() for k, t in flat.items()}, metadata={METADATA_KEY: doc})
    return lzma.compress(blob, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET)


def write_artifact(
    path: str | Path,
    tensors: Mapping[str, QTensor],
    config: ModelConfig,
    *,
    tokenizer_sha256: str,
    vocab_size: int,
    provenance: Provenance | None = None,
    code_bytes: int = 0,
    arch: str = DEFAULT_ARCH,
) -> int:
    """Write a `.golf` file atomically; returns its size in bytes."""
    data = encode_artifact(
        tensors,
        config,
        tokenizer_sha256=tokenizer_sha256,
        vocab_size=vocab_size,
        provenance=provenance,
        code_bytes=code_bytes,
        arch=arch,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(data)


def pack(
    path: str | Path,
    state_dict: Mapping[str, Tensor],
    config: ModelConfig,
    *,
    tokenizer_sha256: str,
    vocab_size: int,
    provenance: Provenance | None = None,
    code_bytes: int = 0,
    passthrough_max_numel: int = PASSTHROUGH_MAX_NUMEL,
    arch: str = DEFAULT_ARCH,
) -> int:
    """Quantize a float state dict with the reference rule (round-to-nearest, schemes from
    the roles the `arch` class declares) and write it."""
    _model_class(arch)  # an unknown name is UnknownArch, as it would be on reading
    roles = roles_for(config, arch)
    return write_artifact(
        path,
        quantize_state_dict(state_dict, roles, passthrough_max_numel=passthrough_max_numel),
        config,
        tokenizer_sha256=tokenizer_sha256,
        vocab_size=vocab_size,
        provenance=provenance,
        code_bytes=code_bytes,
        arch=arch,
    )


def random_artifact(
    config: ModelConfig,
    tokenizer_sha256: str,
    vocab_size: int,
    out_path: str | Path,
    seed: int = 0,
    *,
    passthrough_max_numel: int = 0,
    arch: str = DEFAULT_ARCH,
) -> int:
    """A quantized, seeded random-init model: the first demo artifact and a test fixture.

    Every matrix is quantized by default (threshold 0), so even a tiny config carries
    all three schemes; pass PASSTHROUGH_MAX_NUMEL for the reference's choice.
    """
    cls = _model_class(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = cls(config).state_dict()
    return pack(
        out_path,
        state,
        config,
        tokenizer_sha256=tokenizer_sha256,
        vocab_size=vocab_size,
        provenance=Provenance(seeds=(seed,), notes={"source": "random-init"}),
        passthrough_max_numel=passthrough_max_numel,
        arch=arch,
    )


def _flatten(tensors: Mapping[str, QTensor]) -> dict[str, Tensor]:
    flat: dict[str, Tensor] = {}
    for name, qt in tensors.items():
        if qt.scale is None:
            flat[name] = qt.values
        else:
            flat[f"{name}.q"] = qt.values
            flat[f"{name}.scale"] = qt.scale
    return flat


def _dtype_tag(t: Tensor) -> str:
    for tag, (dtype, _) in DTYPES.items():
        if t.dtype == dtype:
            return tag
    return str(t.dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------- reading


def inflate(data: bytes, limit: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """Decompress one xz stream, refusing more than `limit` output bytes."""
    if not data:
        raise NotAnArtifact("empty file")
    if not data.startswith(XZ_MAGIC):
        if XZ_MAGIC.startswith(data):
            raise Truncated(f"file ends after {len(data)} bytes, inside the xz magic")
        if foreign := _known_format(data):
            raise NotAnArtifact(f"not a .golf artifact: {foreign}{_torch_hint(foreign)}")
        raise NotAnArtifact(
            f"not a .golf artifact (not an xz stream; starts with {data[:8].hex()})"
        )
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
    try:
        out = decoder.decompress(data, max_length=limit + 1)
    except lzma.LZMAError as e:
        if "memory" in str(e).lower():
            raise DecompressionBomb(
                f"xz stream needs more than {XZ_MEMLIMIT} bytes of decoder memory"
            ) from None
        raise CorruptStream(f"xz stream is corrupt: {e}") from None
    if len(out) > limit:
        raise DecompressionBomb(f"decompressed size exceeds the limit of {limit} bytes")
    if not decoder.eof:
        raise Truncated(f"xz stream ends early after {len(data)} bytes")
    if decoder.unused_data:
        raise CorruptStream(f"{len(decoder.unused_data)} trailing bytes after the xz stream")
    return out


def read_artifact(
    source: str | Path | bytes,
    *,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
    name: str | None = None,
) -> Artifact:
    """Read and validate a `.golf` file (path) or its bytes. An error names the file:
    `name` if given (an upload's file name), else the path read."""
    if isinstance(source, bytes):
        data = source
    else:
        try:
            data = read_file(source, max_decompressed)  # its errors name the path
        except ArtifactError as e:
            if name is None:
                raise
            raise type(e)(str(e).replace(str(source), name)) from None
    label = name or (None if isinstance(source, bytes) else str(source))
    try:
        return _read_artifact(data, max_decompressed)
    except ArtifactError as e:
        if label is None:
            raise
        raise type(e)(f"{label}: {e}") from None


def _read_artifact(data: bytes, max_decompressed: int) -> Artifact:
    blob = inflate(data, max_decompressed)
    entries, header_meta = _parse_header(blob)
    meta = _parse_meta(header_meta)
    config = _parse_config(meta.config, meta.arch)
    _check_vocab(meta, config)
    stored = {key: (e.dtype, e.shape) for key, e in entries.items()}
    _check_layout(meta.quant, stored, _model_shapes(config, meta.arch))
    try:
        flat = st_load(blob)
    except SafetensorError as e:
        raise BadHeader(f"safetensors rejected the blob: {e}") from None
    tensors: dict[str, QTensor] = {}
    for name, scheme in meta.quant.items():
        if scheme in FLOAT_SCHEMES:
            qt = QTensor(scheme, flat[name])
        else:
            qt = QTensor(scheme, flat[f"{name}.q"], flat[f"{name}.scale"])
        _check_values(name, qt)
        tensors[name] = qt
    return Artifact(
        sha256=hashlib.sha256(data).hexdigest(),
        n_bytes=len(data),
        config=config,
        metadata=meta,
        tensors=tensors,
    )


def load_model(artifact: Artifact, device: str | torch.device = "cpu") -> GPT:
    """The artifact's model class holding its dequantized weights (strict: every name must
    match)."""
    model = _model_class(artifact.metadata.arch)(artifact.config)
    model.load_state_dict(artifact.dequantize(), strict=True)
    return model.to(device).eval()


def read_file(path: str | Path, max_bytes: int = DEFAULT_MAX_DECOMPRESSED) -> bytes:
    """A file's bytes, refusing files over `max_bytes`; any failure is an ArtifactError."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(f"{path} is {size} bytes, over the limit of {max_bytes}")
        return path.read_bytes()
    except OSError as e:
        raise NotAnArtifact(f"cannot read {path}: {e.strerror or e}") from None


def _torch_hint(what: str) -> str:
    """What to do with a file `_known_format` found to be torch.save's output."""
    if what.startswith(("a zip", "a pickle")):
        return "; it looks like a PyTorch file: convert it with `golf import-pg`"
    return ""


def _known_format(data: bytes) -> str | None:
    """What a non-artifact probably is, for the error message."""
    if data.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save output?)"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a pickle"
    if data.startswith(b"\x1f\x8b"):
        return "a gzip stream"
    return None


@dataclass(frozen=True)
class _Entry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _parse_header(blob: bytes) -> tuple[dict[str, _Entry], dict[str, str]]:
    """Check the safetensors header by hand before the library sees the bytes."""
    foreign = _known_format(blob)
    if foreign and blob[8:9] != b"{":
        raise NotAnArtifact(f"payload is {foreign}, not safetensors{_torch_hint(foreign)}")
    if len(blob) < 8:
        raise Truncated(f"payload is {len(blob)} bytes, shorter than the length field")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES:
        raise BadHeader(f"header length {n} exceeds the limit of {MAX_HEADER_BYTES}")
    if n > len(blob) - 8:
        raise Truncated(f"header length {n} runs past the payload end ({len(blob) - 8})")
    header = _json(blob[8 : 8 + n], "safetensors header", BadHeader)
    if not isinstance(header, dict):
        raise BadHeader("safetensors header is not a JSON object")
    data_len = len(blob) - 8 - n
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise BadHeader("safetensors __metadata__ is missing or not a string map")
    entries = {name: _parse_entry(name, info) for name, info in header.items()}
    for name, e in entries.items():
        if e.begin > data_len:
            raise BadHeader(f"tensor {name}: data_offsets start {e.begin} past the end {data_len}")
    cursor = 0
    for name, e in sorted(entries.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if e.begin != cursor:
            what = "overlaps the previous tensor" if e.begin < cursor else "leaves a gap"
            raise BadHeader(f"tensor {name}: data_offsets {e.begin} {what} (expected {cursor})")
        cursor = e.end
    if cursor != data_len:
        if cursor > data_len:
            raise Truncated(f"tensor data needs {cursor} bytes, payload holds {data_len}")
        raise BadHeader(f"{data_len - cursor} bytes after the last tensor")
    return entries, meta


def _parse_entry(name: str, info: object) -> _Entry:
    if not name or len(name) > 256:
        raise BadHeader(f"tensor name {name[:40]!r} is empty or too long")
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise BadHeader(f"tensor {name}: entry must hold exactly dtype, shape, data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPES:
        raise BadHeader(f"tensor {name}: dtype {str(dtype)[:16]!r} is not one of {sorted(DTYPES)}")
    if not _int_list(shape) or len(shape) > 8:
        raise BadHeader(f"tensor {name}: shape must be a list of at most 8 non-negative ints")
    if not _int_list(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise BadHeader(f"tensor {name}: data_offsets must be [begin, end] with begin <= end")
    span = math.prod(shape) * DTYPES[dtype][1]
    if offsets[1] - offsets[0] != span:
        raise BadHeader(
            f"tensor {name}: shape {shape} x {dtype} is {span} bytes, "
            f"offsets span {offsets[1] - offsets[0]}"
        )
    return _Entry(dtype, tuple(shape), offsets[0], offsets[1])


def _int_list(x: object) -> bool:
    return isinstance(x, list) and all(type(v) is int and v >= 0 for v in x)


def _json(raw: bytes | str, what: str, error: type[ArtifactError]) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate key {Counter(keys).most_common(1)[0][0][:40]!r}")
        return dict(pairs)

    try:
        return json.loads(raw, object_pairs_hook=no_duplicates)
    except (ValueError, RecursionError) as e:
        raise error(f"{what} is not valid JSON: {e}") from None


def _parse_meta(header_meta: dict[str, str]) -> ArtifactMeta:
    if METADATA_KEY not in header_meta:
        raise BadMetadata(f"no {METADATA_KEY!r} document in the safetensors metadata")
    text = header_meta[METADATA_KEY]
    doc = _json(text, "metadata", BadMetadata)
    if not isinstance(doc, dict):
        raise BadMetadata("metadata is not a JSON object")
    if doc.get("format") != METADATA_KEY:
        raise BadMetadata(f"metadata field format must be {METADATA_KEY!r}")
    version = doc.get("version")
    if type(version) is not int:
        raise BadMetadata("metadata field version is missing or not an integer")
    if version != FORMAT_VERSION:
        raise UnsupportedVersion(f"format version {version} (this reader knows {FORMAT_VERSION})")
    return _meta_from_json(text)


def _meta_from_json(text: str) -> ArtifactMeta:
    try:
        meta = ArtifactMeta.model_validate_json(text)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "document"
        raise BadMetadata(f"metadata field {loc}: {err['msg']}") from None
    _model_class(meta.arch)
    return meta


def _parse_config(doc: dict[str, Any], arch: str = DEFAULT_ARCH) -> ModelConfig:
    # Validation itself walks the layers, so a hostile depth is refused before it.
    try:
        too_deep = float(doc.get("num_layers", 0)) > MAX_LAYERS
    except (TypeError, ValueError):
        too_deep = False
    if too_deep:
        raise ConfigInvalid(f"model config num_layers is over {MAX_LAYERS}")
    try:
        return parse_config(doc, arch)
    except ConfigError as e:
        raise ConfigInvalid(f"model config: {e}") from None
    except Exception as e:  # hostile sizes can overflow derived fields while validating
        raise ConfigInvalid(f"model config: {type(e).__name__}: {e}") from None


def _model_class(arch: str) -> type[GPT]:
    """The registered class of `arch`; UnknownArch (a BadMetadata) if there is none."""
    try:
        return model_class(arch)
    except UnknownArchitecture as e:
        raise UnknownArch(f"metadata field arch: {e}") from None


def _model_shapes(config: ModelConfig, arch: str = DEFAULT_ARCH) -> dict[str, tuple[int, ...]]:
    """expected_shapes, refusing unknown architectures, and configs too deep to build or
    too large to describe."""
    _model_class(arch)
    if config.num_virtual_layers > MAX_LAYERS:
        n = config.num_virtual_layers
        raise ConfigInvalid(f"model config has {n} layers, more than {MAX_LAYERS}")
    try:
        return expected_shapes(config, arch)
    except Exception as e:  # sizes past int64 or storage limits fail in torch, many ways
        message = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ConfigInvalid(f"model config describes no buildable model: {message}") from None


def _check_vocab(meta: ArtifactMeta, config: ModelConfig) -> None:
    if meta.tokenizer.vocab_size != config.vocab_size:
        raise VocabMismatch(
            f"tokenizer vocab_size {meta.tokenizer.vocab_size} != config vocab_size "
            f"{config.vocab_size}"
        )


def _check_layout(
    quant: Mapping[str, Scheme],
    stored: Mapping[str, tuple[str, tuple[int, ...]]],
    expected: Mapping[str, tuple[int, ...]],
) -> None:
    """Names, dtypes and shapes of the stored tensors against the config and schemes."""
    for name in expected:
        if name not in quant:
            raise MissingTensor(f"tensor {name}: required by the config, absent from the quant map")
    for name in quant:
        if name not in expected:
            raise UnexpectedTensor(f"tensor {name}: in the quant map, not in the model")
    wanted: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, scheme in quant.items():
        shape = tuple(expected[name])
        if scheme in FLOAT_SCHEMES:
            wanted[name] = (FLOAT_SCHEMES[scheme], shape)
        elif len(shape) != 2:
            raise ShapeMismatch(f"tensor {name}: {scheme} needs a matrix, model shape is {shape}")
        else:
            wanted[f"{name}.q"] = ("I8", shape)
            wanted[f"{name}.scale"] = ("F16", shape[:1])
    for key in wanted:
        if key not in stored:
            raise MissingTensor(f"tensor {key}: not in the file")
    for key in stored:
        if key not in wanted:
            raise UnexpectedTensor(f"tensor {key}: in the file, not expected by the quant map")
    for key, (dtype, shape) in wanted.items():
        got_dtype, got_shape = stored[key]
        if got_dtype != dtype:
            raise DtypeMismatch(f"tensor {key}: dtype {got_dtype}, expected {dtype}")
        if tuple(got_shape) != shape:
            raise ShapeMismatch(f"tensor {key}: shape {list(got_shape)}, expected {list(shape)}")


def _check_values(name: str, qt: QTensor) -> None:
    """Integers within the scheme's range, scales finite and positive, floats finite."""
    if qt.scale is None:
        _check_finite(name, qt.values)
        return
    qmax = QMAX[qt.scheme]
    outside = (qt.values < -qmax) | (qt.values > qmax)
    if outside.any():
        bad = int(qt.values[outside][0])
        raise OutOfRange(f"tensor {name}.q: value {bad} outside the {qt.scheme} range ±{qmax}")
    key = f"{name}.scale"
    _check_finite(key, qt.scale)
    nonpos = (qt.scale <= 0).nonzero()
    if len(nonpos):
        row = int(nonpos[0, 0])
        raise OutOfRange(f"tensor {key}: row {row} scale {float(qt.scale[row])} is not positive")


def _check_finite(key: str, t: Tensor) -> None:
    bad = (~torch.isfinite(t)).nonzero()
    if len(bad):
        index = tuple(int(i) for i in bad[0])
        raise NonFinite(f"tensor {key}: non-finite value {float(t[index])} at index {list(index)}")
