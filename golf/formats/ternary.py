"""The ternary record's container (2026-03-24 ternary U-Net): `{name: {"type": ...}}`.

Every tensor is a dict whose `type` says how it is stored:
- `ternary`: weights in {-1, 0, +1}, five trits a byte in base 3 (`packed`, `n_trits` of
  them, digit i of a byte = trit i + 1), an fp16 absmean `scale` per group of
  `group_size` along the rows padded to `padded_cols`; `shape` is the 2-D shape (a 3-D
  tensor flattened to rows), `orig_shape` the tensor's own;
- `ternary_bitmask`: the same trits as a packed non-zero mask then the packed signs
  (1 = +1) of the non-zeros; the record keeps whichever compresses smaller;
- `fp8` (e4m3), `fp16`: `data` as stored; `fp4`: two 4-bit codes a byte (low nibble
  first, code − 8), an fp16 absmax/7 scale per row.
The record's dequantizer restores everything to bfloat16 and, for ternary groups, divides
the scale by the group's fraction of non-zeros (its "shrinkage fix", so that the ternary
layer's own absmean re-quantization at load gives back the stored scale). The entries
here are the float32 values before that bf16 cast (fp16 data as stored), computed with the
same operations in the same order; golf.formats.containers makes them entries restored to
`RESTORE`. Nothing is requantized. Sizes are checked against
each other before anything is unpacked; a lie is one typed line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from golf.formats.artifact import (
    BadMetadata,
    DtypeMismatch,
    MissingTensor,
    ShapeMismatch,
    TooLarge,
)

TERNARY = "ternary {type}"
KINDS = frozenset({"ternary", "ternary_bitmask", "fp8", "fp16", "fp4"})
MAX_ELEMENTS = 1 << 28
"""Elements of one tensor, and of all together (the record holds 67M; a byte of trits
unpacks to 20 bytes of float32, so the decompression cap alone would allow 5 GB)."""
MAX_GROUP = 1 << 16
RESTORE = torch.bfloat16
"""deq_sd's target dtype: every tensor of the record is loaded from bf16 values."""


def is_ternary(obj: Any) -> bool:
    """Whether a loaded archive object has this container's shape (a non-empty dict of
    dicts that each name a `type`)."""
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in obj.values())
    )


def read_ternary(obj: Mapping[Any, Any]) -> dict[str, Tensor]:
    """Every tensor of the container, dequantized as the record's own loader does (before
    its cast to `RESTORE`)."""
    out: dict[str, Tensor] = {}
    total = 0
    for name, entry in obj.items():
        if not isinstance(name, str):
            raise BadMetadata(f"ternary container has a non-string key {name!r:.40}")
        kind = entry["type"]
        if kind not in KINDS:
            raise BadMetadata(f"tensor {name}: unknown storage type {kind!r:.40}")
        total += _declared(name, entry)
        if total > MAX_ELEMENTS:
            raise TooLarge(f"ternary container: more than {MAX_ELEMENTS} elements by {name}")
        if kind in ("ternary", "ternary_bitmask"):
            values = _ternary(name, entry, kind)
        elif kind == "fp4":
            values = _fp4(name, entry)
        else:
            data = _field(name, entry, "data", Tensor)
            want = torch.float8_e4m3fn if kind == "fp8" else torch.float16
            if data.dtype != want:
                raise DtypeMismatch(f"tensor {name}: {kind} data has dtype {data.dtype}")
            if data.numel() > MAX_ELEMENTS:
                raise TooLarge(f"tensor {name}: {data.numel()} elements")
            values = data.float() if kind == "fp8" else data
        out[name] = values
    return out


def _declared(name: str, entry: Mapping[str, Any]) -> int:
    """The element count an entry claims (checked against its bytes when it is read)."""
    if entry["type"] in ("fp8", "fp16"):
        return int(_field(name, entry, "data", Tensor).numel())
    rows, cols = _dims(name, entry, "shape", (2,))
    return rows * cols


def _field(name: str, entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in entry:
        raise MissingTensor(f"tensor {name}: {entry['type']} entry has no {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadMetadata(f"tensor {name}: {key!r} is a {type(value).__name__}")
    return value


def _dims(name: str, entry: Mapping[str, Any], key: str, ndim: tuple[int, ...]) -> list[int]:
    dims = _field(name, entry, key, list)
    if len(dims) not in ndim or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_ELEMENTS for d in dims
    ):
        raise ShapeMismatch(f"tensor {name}: {key} {dims!r:.60} is not a shape")
    if int(np.prod(dims, dtype=np.int64)) > MAX_ELEMENTS:
        raise TooLarge(f"tensor {name}: {key} {dims} has more than {MAX_ELEMENTS} elements")
    return dims


def _ternary(name: str, entry: Mapping[str, Any], kind: str) -> Tensor:
    """Trits -> q * (scale / mean|q|) per group, rows cropped to the shape, orig shape."""
    rows, cols = _dims(name, entry, "shape", (2,))
    group = _field(name, entry, "group_size", int)
    padded = _field(name, entry, "padded_cols", int)
    n = _field(name, entry, "n_trits", int)
    packed = _field(name, entry, "packed", bytes)
    scale = _field(name, entry, "scale", Tensor)
    if not 1 <= group <= MAX_GROUP:
        raise BadMetadata(f"tensor {name}: group_size {group} outside [1, {MAX_GROUP}]")
    if padded != -(-cols // group) * group:
        raise ShapeMismatch(
            f"tensor {name}: padded_cols {padded} is not {cols} rounded up to groups of {group}"
        )
    if n != rows * padded:
        raise ShapeMismatch(f"tensor {name}: n_trits {n} != {rows} rows x {padded} padded cols")
    if scale.dtype != torch.float16 or scale.shape != (n // group,):
        raise ShapeMismatch(
            f"tensor {name}: scale {scale.dtype} {list(scale.shape)}, expected float16 "
            f"[{n // group}] (one per group of {group})"
        )
    orig = entry.get("orig_shape")
    if orig is not None:
        orig = _dims(name, entry, "orig_shape", (1, 2, 3, 4))
        if int(np.prod(orig)) != rows * cols or orig[0] != rows:
            raise ShapeMismatch(
                f"tensor {name}: orig_shape {orig} does not flatten to {rows}x{cols}"
            )
    trits = unpack_base3(name, packed, n) if kind == "ternary" else unpack_bitmask(name, packed, n)
    q = torch.from_numpy(trits).float().reshape(-1, group)
    s = scale.float().unsqueeze(-1)
    q_absmean = q.abs().mean(-1, keepdim=True).clamp(min=1e-8)
    t = (q * (s / q_absmean)).reshape(-1, padded)[:rows, :cols]
    if orig is not None and orig != [rows, cols]:
        return t.reshape(orig).contiguous()
    return t.contiguous()


def unpack_base3(name: str, packed: bytes, n: int) -> np.ndarray:
    """`n` trits in {-1, 0, 1} from five-a-byte base-3 digits (least significant first)."""
    if len(packed) != -(-n // 5):
        raise ShapeMismatch(f"tensor {name}: {len(packed)} packed bytes for {n} trits (5 a byte)")
    v = np.frombuffer(packed, dtype=np.uint8)
    if v.size and int(v.max()) >= 243:
        raise BadMetadata(f"tensor {name}: byte {int(v.max())} is not five base-3 digits")
    v = v.astype(np.int16)
    digits = np.empty((v.size, 5), dtype=np.int8)
    for i in range(5):
        digits[:, i] = v % 3
        v = v // 3
    return digits.reshape(-1)[:n] - 1


def unpack_bitmask(name: str, packed: bytes, n: int) -> np.ndarray:
    """`n` trits from a packed non-zero mask followed by the packed signs of the non-zeros."""
    mask_bytes = -(-n // 8)
    if len(packed) < mask_bytes:
        raise ShapeMismatch(
            f"tensor {name}: {len(packed)} bytes, the mask alone needs {mask_bytes}"
        )
    nz = np.unpackbits(np.frombuffer(packed[:mask_bytes], dtype=np.uint8))[:n].astype(bool)
    count = int(nz.sum())
    if len(packed) != mask_bytes + -(-count // 8):
        raise ShapeMismatch(
            f"tensor {name}: {len(packed) - mask_bytes} sign bytes for {count} non-zero trits"
        )
    signs = np.unpackbits(np.frombuffer(packed[mask_bytes:], dtype=np.uint8))[:count].astype(bool)
    out = np.zeros(n, dtype=np.int8)
    out[nz] = np.where(signs, 1, -1)
    return out


def _fp4(name: str, entry: Mapping[str, Any]) -> Tensor:
    """Per-row absmax/7 4-bit codes, two a byte (low nibble first)."""
    shape = _dims(name, entry, "shape", (2,))
    packed = _field(name, entry, "packed", Tensor)
    scale = _field(name, entry, "scale", Tensor)
    numel = shape[0] * shape[1]
    if packed.dtype != torch.uint8 or packed.numel() != -(-numel // 2):
        raise ShapeMismatch(
            f"tensor {name}: fp4 packed {packed.dtype} x{packed.numel()}, expected uint8 "
            f"x{-(-numel // 2)}"
        )
    if scale.dtype != torch.float16 or scale.numel() != shape[0]:
        raise ShapeMismatch(f"tensor {name}: fp4 scale {scale.dtype} x{scale.numel()}, one a row")
    flat = packed.reshape(-1)
    codes = torch.empty(flat.numel() * 2, dtype=torch.int8)
    codes[0::2] = (flat & 0x0F).to(torch.int8) - 8
    codes[1::2] = ((flat >> 4) & 0x0F).to(torch.int8) - 8
    values = codes[:numel].float().reshape(-1, shape[1]) * scale.reshape(-1).float().unsqueeze(-1)
    return values.reshape(shape)
