"""Containers the records put in their `torch.save` archives, read into one shape.

- `{"w","m"}`: `w` holds tensors, `m[name]` says how (a passthrough marker, or
  `{"type": "int6" | "int8" | ...}` with `w[name+".q"]` int8 and `w[name+".scale"]`).
- `int8_clean_per_row_v1` (the NaiveBaseline export and its descendants): dicts
  `quantized` (int8), `scales` (fp16 per row, or a 0-d per-tensor scale), `dtypes`
  (the float dtype each quantized tensor is restored to), `passthrough` (tensors kept
  as they are, fp32/bf16 ones stored as fp16 with `passthrough_orig_dtypes`), `qmeta`.

Each becomes `{name: Entry}`: integers + scale, or float values, plus the dtype the
record's own dequantizer restores. Nothing is requantized here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from golf.formats.artifact import (
    BadMetadata,
    DtypeMismatch,
    MissingTensor,
    NotAnArtifact,
    ShapeMismatch,
    UnexpectedTensor,
)
from golf.formats.lqer import dequantize_lqer, lqer_keys
from golf.formats.ternary import RESTORE, TERNARY, is_ternary, read_ternary

INT8_CLEAN = "int8_clean_per_row_v1"
GATE_INT8_ROW = "gate_int8_row"
WM = "{w,m}"
PASSTHROUGH_MARKERS = frozenset(
    {"passthrough", "passthrough_ctrl", "passthrough_fp16", "passthrough (float16)"}
)
FLOAT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Entry:
    """One tensor as stored: int8 `values` with `scale` (per row, or 0-d per tensor) and
    `bits`, or float `values` alone (passthrough); `restore` is the dtype the record's
    dequantizer casts the result to."""

    values: Tensor
    scale: Tensor | None = None
    bits: int | None = None
    restore: torch.dtype | None = None

    def dequantize(self) -> Tensor:
        """Float32 values, computed as the records' dequantizers do (before their cast)."""
        if self.scale is None:
            return self.values.float()
        s = self.scale.float()
        if s.ndim == 0:
            return self.values.float() * float(s.item())
        return self.values.float() * s.view(self.values.shape[0], *([1] * (self.values.ndim - 1)))


def container_of(obj: Any) -> str:
    """Which container a loaded archive object is; NotAnArtifact if none."""
    if isinstance(obj, dict) and obj.get("__quant_format__") == INT8_CLEAN:
        return INT8_CLEAN
    if isinstance(obj, dict) and isinstance(obj.get("__quant_format__"), str):
        raise NotAnArtifact(f"unsupported __quant_format__ {obj['__quant_format__']!r:.60}")
    if isinstance(obj, dict) and isinstance(obj.get("w"), dict) and isinstance(obj.get("m"), dict):
        return WM
    if is_ternary(obj):
        return TERNARY
    keys = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
    raise NotAnArtifact(f"unknown container (top level {keys})")


def read_entries(obj: Any) -> dict[str, Entry]:
    """The tensors of a loaded container, by name."""
    kind = container_of(obj)
    if kind == INT8_CLEAN:
        return _int8_clean(obj)
    if kind == WM:
        return _wm(obj)
    return {name: Entry(v, None, None, RESTORE) for name, v in read_ternary(obj).items()}


def _dict_of_tensors(obj: Mapping, key: str) -> dict[str, Tensor]:
    d = obj.get(key, {})
    if not isinstance(d, dict):
        raise BadMetadata(f"{key!r} is a {type(d).__name__}, expected a dict")
    for name, t in d.items():
        if not isinstance(name, str):
            raise BadMetadata(f"{key!r} has a non-string key {name!r:.40}")
        if not isinstance(t, Tensor):
            raise BadMetadata(f"{key}[{name}] is a {type(t).__name__}, expected a tensor")
    return d


def _dict_of_str(obj: Mapping, key: str) -> dict[str, str]:
    d = obj.get(key, {})
    if not isinstance(d, dict) or not all(isinstance(v, str) for v in d.values()):
        raise BadMetadata(f"{key!r} must map names to dtype strings")
    return d


def _float_dtype(name: str, spelled: str) -> torch.dtype:
    if spelled not in FLOAT_DTYPES:
        raise DtypeMismatch(f"tensor {name}: restore dtype {spelled!r:.40} is not a float dtype")
    return FLOAT_DTYPES[spelled]


def _int8_clean(obj: Mapping) -> dict[str, Entry]:
    quantized = _dict_of_tensors(obj, "quantized")
    scales = _dict_of_tensors(obj, "scales")
    passthrough = _dict_of_tensors(obj, "passthrough")
    dtypes = _dict_of_str(obj, "dtypes")
    orig = _dict_of_str(obj, "passthrough_orig_dtypes")
    out: dict[str, Entry] = {}
    for name, q in quantized.items():
        if name not in scales:
            raise MissingTensor(f"tensor {name}: quantized without a scale")
        if name not in dtypes:
            raise BadMetadata(f"tensor {name}: quantized without a restore dtype")
        if q.dtype != torch.int8:
            raise DtypeMismatch(f"tensor {name}: quantized dtype {q.dtype}, expected int8")
        s = scales[name]
        if s.ndim not in (0, 1) or (s.ndim == 1 and (q.ndim < 1 or s.shape[0] != q.shape[0])):
            raise ShapeMismatch(
                f"tensor {name}: scale shape {list(s.shape)} does not fit {list(q.shape)}"
            )
        if not s.is_floating_point():
            raise DtypeMismatch(f"tensor {name}: scale dtype {s.dtype} is not float")
        out[name] = Entry(q, s, 8, _float_dtype(name, dtypes[name]))
    for name in scales:
        if name not in quantized:
            raise UnexpectedTensor(f"tensor {name}: a scale without quantized values")
    for name, t in passthrough.items():
        if name in out:
            raise UnexpectedTensor(f"tensor {name}: both quantized and passed through")
        restore = _float_dtype(name, orig[name]) if name in orig else t.dtype
        out[name] = Entry(t, None, None, restore)
    return out


def _bits(name: str, info: object) -> int | None:
    """Bit width of a `{w,m}` entry, None for passthrough (the lineage's spellings)."""
    if isinstance(info, str) and info in PASSTHROUGH_MARKERS:
        return None
    spelled = info.get("type") if isinstance(info, dict) else info
    match = re.fullmatch(r"(?:gptq \()?int([2-8])\)?", spelled if isinstance(spelled, str) else "")
    if match is None:
        raise BadMetadata(f"tensor {name}: unsupported reference quantization {info!r:.60}")
    return int(match.group(1))


def _per_row(name: str, q: Tensor, s: Tensor, bits: int) -> Entry:
    """int8 values with a per-row (or 0-d) scale, checked."""
    if q.dtype != torch.int8:
        raise DtypeMismatch(f"tensor {name}.q: dtype {q.dtype}, expected int8")
    if s.ndim not in (0, 1) or (s.ndim == 1 and (q.ndim < 1 or s.shape[0] != q.shape[0])):
        raise ShapeMismatch(
            f"tensor {name}.scale: shape {list(s.shape)} does not fit {list(q.shape)}"
        )
    return Entry(q, s, bits, None)


def _wm(obj: Mapping) -> dict[str, Entry]:
    w = _dict_of_tensors(obj, "w")
    m = obj["m"]
    used: set[str] = set()
    out: dict[str, Entry] = {}
    for name, info in m.items():
        if not isinstance(name, str):
            raise BadMetadata(f'reference "m" has a non-string key {name!r:.40}')
        if info == GATE_INT8_ROW:  # 04-19 … : attention gate rows int8, `.gq` / `.gs`
            keys = [f"{name}.gq", f"{name}.gs"]
            for key in keys:
                if key not in w:
                    raise MissingTensor(f'tensor {key}: listed in "m", absent from "w"')
            used.update(keys)
            out[name] = _per_row(name, w[keys[0]], w[keys[1]], 8)
            continue
        if isinstance(info, str) and info.endswith(("+lqer", "+lqer_asym")):  # 04-27 …
            _bits(name, info.rsplit("+", 1)[0])
            used.update([f"{name}.q", f"{name}.scale", *lqer_keys(name, info)])
            out[name] = Entry(dequantize_lqer(name, info, w), None, None, None)
            continue
        bits = _bits(name, info)
        keys = [name] if bits is None else [f"{name}.q", f"{name}.scale"]
        for key in keys:
            if key not in w:
                raise MissingTensor(f'tensor {key}: listed in "m", absent from "w"')
        used.update(keys)
        if bits is None:
            out[name] = Entry(w[name], None, None, None)
            continue
        out[name] = _per_row(name, w[f"{name}.q"], w[f"{name}.scale"], bits)
    for key in w:
        if key not in used:
            raise UnexpectedTensor(f'tensor {key}: in "w" but not described by "m"')
    return out
