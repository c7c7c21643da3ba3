"""Import a reference Parameter Golf artifact (`final_model.int6.ptz`) as `.golf`.

The reference file is `lzma(torch.save({"w": tensors, "m": meta}))`: for each tensor
NAME, `m[NAME]` is a passthrough marker with `w[NAME]` the fp16 values, or a dict with
`"type": "int6" | "int8"` and `w[NAME + ".q"]` (int8) and `w[NAME + ".scale"]` (fp16,
per row; a single scale for non-matrices). It is read with
`torch.load(weights_only=True)` only. Records that train with parameter banks unbank
before quantizing, so their files hold per-block names too; a file that still holds
banks is unbanked here. The integers and scales are copied, never requantized, so the
dequantized weights are identical before and after.
"""

import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from golf.formats.artifact import (
    DEFAULT_MAX_DECOMPRESSED,
    Artifact,
    BadMetadata,
    ConfigInvalid,
    DtypeMismatch,
    MissingTensor,
    NotAnArtifact,
    Provenance,
    ShapeMismatch,
    UnexpectedTensor,
    inflate,
    read_artifact,
    read_file,
    write_artifact,
)
from golf.formats.quant import QMAX, QTensor, Scheme
from golf.spec.config import ModelConfig
from golf.spec.errors import ConfigError, DataError

PASSTHROUGH_MARKERS = frozenset(
    {"passthrough", "passthrough_ctrl", "passthrough_fp16", "passthrough (float16)"}
)
# Reference name of each bank -> per-block names of its slices, in order.
BANKS: dict[str, tuple[str, ...]] = {
    "qo_bank": ("attn.c_q.weight", "attn.proj.weight"),
    "kv_bank": ("attn.c_k.weight", "attn.c_v.weight"),
    "mlp_up_bank": ("mlp.fc.weight",),
    "mlp_down_bank": ("mlp.proj.weight",),
}


@dataclass(frozen=True)
class _Entry:
    """One reference tensor before it becomes a QTensor; `scale` may still be a scalar."""

    bits: int | None  # None: passthrough
    values: Tensor
    scale: Tensor | None


def import_reference(
    ptz_path: str | Path,
    hparams: Mapping[str, Any],
    tokenizer_path: str | Path,
    out_path: str | Path,
    *,
    code_bytes: int = 0,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Artifact:
    """Rewrite a reference `.ptz` as a `.golf` file and return it, read back.

    `hparams` uses the reference Hyperparameters names in lower case; only what the
    tensors cannot tell is taken from it (heads, softcap, RoPE, XSA, LN scale, ...).
    """
    ptz = read_file(ptz_path, max_decompressed)
    try:
        tokenizer_sha256 = hashlib.sha256(Path(tokenizer_path).read_bytes()).hexdigest()
    except OSError as e:
        raise DataError(f"cannot read tokenizer {tokenizer_path}: {e.strerror or e}") from None
    entries = _unbank(_load_entries(inflate(ptz, max_decompressed)))
    shapes = {name: tuple(e.values.shape) for name, e in entries.items()}
    config = infer_config(shapes, hparams)
    tensors = {name: _to_qtensor(name, e) for name, e in entries.items()}
    seed = hparams.get("seed")
    notes = {
        "imported_from": Path(ptz_path).name,
        "imported_sha256": hashlib.sha256(ptz).hexdigest(),
    }
    if defaulted := defaulted_hparams(shapes, hparams):
        notes["hparams_defaulted"] = ", ".join(defaulted) + " (no effect on scores)"
    provenance = Provenance(
        trainer_version="reference train_gpt.py",
        seeds=(int(seed),) if str(seed).isdigit() else (),
        notes=notes,
    )
    write_artifact(
        out_path,
        tensors,
        config,
        tokenizer_sha256=tokenizer_sha256,
        vocab_size=config.vocab_size,
        provenance=provenance,
        code_bytes=code_bytes,
    )
    return read_artifact(out_path, max_decompressed=max_decompressed)


def _load_entries(raw: bytes) -> dict[str, _Entry]:
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # hostile input reaches many error types; none may escape
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NotAnArtifact(f"not a weights-only torch.save archive: {first}") from None
    if not (isinstance(obj, dict) and all(isinstance(obj.get(k), dict) for k in "wm")):
        raise NotAnArtifact('reference artifact must be a dict with "w" and "m" dicts')
    w, m = obj["w"], obj["m"]
    used: set[str] = set()
    entries: dict[str, _Entry] = {}
    for name, info in m.items():
        if not isinstance(name, str):
            raise BadMetadata(f'reference "m" has a non-string key {name!r:.40}')
        bits = _bits(name, info)
        keys = [name] if bits is None else [f"{name}.q", f"{name}.scale"]
        for key in keys:
            if not isinstance(w.get(key), Tensor):
                raise MissingTensor(f'tensor {key}: listed in "m", absent from "w"')
        used.update(keys)
        if bits is None:
            entries[name] = _Entry(None, w[name], None)
        else:
            entries[name] = _Entry(bits, w[f"{name}.q"], w[f"{name}.scale"])
    for key in w:
        if key not in used:
            raise UnexpectedTensor(f'tensor {key}: in "w" but not described by "m"')
    return entries


def _bits(name: str, info: object) -> int | None:
    """Bit width of a quantized entry, None for passthrough (the lineage's spellings)."""
    if isinstance(info, str) and info in PASSTHROUGH_MARKERS:
        return None
    spelled = info.get("type") if isinstance(info, dict) else info
    match = re.fullmatch(r"(?:gptq \()?int([2-8])\)?", spelled if isinstance(spelled, str) else "")
    if match is None:
        raise BadMetadata(f"tensor {name}: unsupported reference quantization {info!r:.60}")
    return int(match.group(1))


def _unbank(entries: dict[str, _Entry]) -> dict[str, _Entry]:
    """Split 3-D banks into the per-block matrices they stack."""
    out = {name: e for name, e in entries.items() if name not in BANKS}
    for bank, parts in BANKS.items():
        if bank not in entries:
            continue
        e = entries[bank]
        if e.values.ndim != 3 or e.values.shape[0] % len(parts):
            raise ShapeMismatch(f"tensor {bank}: shape {list(e.values.shape)} is not a bank")
        if e.scale is not None and e.scale.ndim != 0:
            raise ShapeMismatch(f"tensor {bank}.scale: a bank carries one scale")
        n = e.values.shape[0] // len(parts)
        for k, part in enumerate(parts):
            for i in range(n):
                out[f"blocks.{i}.{part}"] = _Entry(e.bits, e.values[k * n + i], e.scale)
    return out


def _to_qtensor(name: str, e: _Entry) -> QTensor:
    if e.bits is None:
        if not e.values.is_floating_point():
            raise DtypeMismatch(f"tensor {name}: passthrough dtype {e.values.dtype} is not float")
        return QTensor(Scheme.FP16, _exact_fp16(name, e.values))
    assert e.scale is not None
    if e.values.dtype != torch.int8:
        raise DtypeMismatch(f"tensor {name}.q: dtype {e.values.dtype}, expected int8")
    if e.values.ndim != 2:
        raise ShapeMismatch(f"tensor {name}: only matrices can be quantized per row")
    rows = e.values.shape[0]
    if e.scale.ndim == 0:
        scale = e.scale.reshape(1).expand(rows)
    elif tuple(e.scale.shape) == (rows,):
        scale = e.scale
    else:
        raise ShapeMismatch(f"tensor {name}.scale: shape {list(e.scale.shape)}, expected [{rows}]")
    values = e.values.contiguous()
    # An "int6" tensor whose integers exceed ±31 (QAT clamps at -32) is kept as int8.
    qmax6 = QMAX[Scheme.INT6]
    fits_int6 = e.bits <= 6 and int(values.min()) >= -qmax6 and int(values.max()) <= qmax6
    scheme = Scheme.INT6 if fits_int6 else Scheme.INT8
    return QTensor(scheme, values, _exact_fp16(f"{name}.scale", scale).contiguous())


def _exact_fp16(name: str, t: Tensor) -> Tensor:
    """The tensor in fp16, refusing any value that fp16 would change."""
    half = t.detach().to(torch.float16)
    if not torch.allclose(half.to(t.dtype), t.detach(), rtol=0, atol=0, equal_nan=True):
        raise DtypeMismatch(f"tensor {name}: {t.dtype} values are not exact in fp16")
    return half


# Config fields no tensor reveals, taken from the reference hyperparameters (same names).
# Those that change the scores are required: a record that left one at its default still
# states it in its Hyperparameters (or its log's dump), and a silent default scored a
# record differently (softcap 30 vs its 20). `qk_gain_init` and `num_heads` only matter
# without a `q_gain` tensor; `ve_layers` only with value embeddings; `recur_layers` only
# when the tensors hold more virtual layers than physical ones.
TENSOR_BLIND = (
    "logit_softcap",
    "rope_base",
    "rope_dims",
    "rope_train_seq_len",
    "qk_gain_init",
    "ln_scale",
    "xsa_last_n",
    "tied_embed_init_std",
    "ve_layers",
    "recur_layers",
    "num_heads",
)
REQUIRED = (
    "logit_softcap",
    "rope_base",
    "rope_dims",
    "rope_train_seq_len",
    "ln_scale",
    "xsa_last_n",
)
INIT_ONLY = ("tied_embed_init_std",)
"""Used only to initialise training weights: defaulted, since a score never depends on it."""


def missing_hparams(shapes: Mapping[str, tuple[int, ...]], hparams: Mapping[str, Any]) -> list[str]:
    """The keys the scores depend on that neither the tensors nor `hparams` give."""
    needed = list(REQUIRED)
    if "blocks.0.attn.q_gain" not in shapes:
        needed += ["num_heads", "qk_gain_init"]
    if "ve_shared.embed.weight" in shapes:
        needed.append("ve_layers")
    return [key for key in needed if key not in hparams]


def defaulted_hparams(
    shapes: Mapping[str, tuple[int, ...]], hparams: Mapping[str, Any]
) -> list[str]:
    """Keys left at golf's defaults because no score depends on them (said, not silent)."""
    unused = [*INIT_ONLY, *(("qk_gain_init",) if "blocks.0.attn.q_gain" in shapes else ())]
    return [key for key in unused if key not in hparams]


def infer_config(shapes: Mapping[str, tuple[int, ...]], hparams: Mapping[str, Any]) -> ModelConfig:
    """Model config from tensor names and shapes, plus what only the hparams can tell;
    ConfigInvalid naming every missing key the scores depend on (never a silent default)."""
    if missing := missing_hparams(shapes, hparams):
        raise ConfigInvalid(
            f"--hparams lacks {', '.join(missing)}: the tensors cannot tell "
            f"{'it' if len(missing) == 1 else 'them'} and the scores depend on "
            f"{'it' if len(missing) == 1 else 'them'}; copy the record's values from its "
            "train_gpt.py Hyperparameters or its log"
        )
    doc = {key: hparams[key] for key in TENSOR_BLIND if key in hparams}
    for key in ("ve_layers", "recur_layers"):
        if isinstance(doc.get(key), str):  # the reference spells them "9,10"
            doc[key] = tuple(int(x) for x in doc[key].split(",") if x.strip())
    doc |= _from_tensors(shapes, doc.get("num_heads", ModelConfig().num_heads))
    virtual = _count(shapes, "blocks.{}.attn_scale")
    if virtual != doc["num_layers"] and "recur_layers" not in doc:
        raise ConfigInvalid(
            f"--hparams lacks recur_layers: tensors hold {virtual} layers over "
            f"{doc['num_layers']} physical ones"
        )
    # The reference runs XSA on layers max(0, n - xsa_last_n) .. n-1, so larger means all.
    xsa = doc.get("xsa_last_n", ModelConfig().xsa_last_n)
    if str(xsa).isdigit():
        doc["xsa_last_n"] = min(int(xsa), virtual)
    try:
        return ModelConfig.parse(doc)
    except ConfigError as e:
        raise ConfigInvalid(f"inferred model config: {e}") from None


def _count(shapes: Mapping[str, tuple[int, ...]], pattern: str) -> int:
    """How many consecutive blocks, from 0, hold a tensor named by `pattern`."""
    n = 0
    while pattern.format(n) in shapes:
        n += 1
    return n


def _from_tensors(shapes: Mapping[str, tuple[int, ...]], num_heads: int) -> dict[str, Any]:
    def matrix(name: str) -> tuple[int, int]:
        if name not in shapes:
            raise MissingTensor(f"tensor {name}: needed to infer the model config")
        if len(shapes[name]) != 2:
            raise ShapeMismatch(f"tensor {name}: shape {list(shapes[name])} is not a matrix")
        rows, cols = shapes[name]
        return rows, cols

    def has(suffix: str) -> bool:
        return any(name.endswith(suffix) for name in shapes)

    vocab, d = matrix("tok_emb.weight")
    heads = num_heads
    if "blocks.0.attn.q_gain" in shapes:
        if len(shapes["blocks.0.attn.q_gain"]) != 1:
            raise ShapeMismatch("tensor blocks.0.attn.q_gain: expected one gain per head")
        (heads,) = shapes["blocks.0.attn.q_gain"]
    if heads < 1 or d % heads:
        raise ShapeMismatch(f"tensor blocks.0.attn.q_gain: {heads} heads do not divide {d} dims")
    kv_rows, _ = matrix("blocks.0.attn.c_k.weight")
    if kv_rows % (d // heads):
        raise ShapeMismatch(
            f"tensor blocks.0.attn.c_k.weight: {kv_rows} rows are not whole heads of {d // heads}"
        )
    hidden, _ = matrix("blocks.0.mlp.fc.weight")
    doc: dict[str, Any] = {
        "vocab_size": vocab,
        "model_dim": d,
        "num_layers": _count(shapes, "blocks.{}.attn.c_q.weight"),
        "num_heads": heads,
        "num_kv_heads": kv_rows // (d // heads),
        "mlp_mult": hidden / d,
        "tie_embeddings": "lm_head.weight" not in shapes,
        "smear": "smear.gate" in shapes,
        "skip_gates": "skip_gates" in shapes,
        "attn_gate": has(".attn.attn_gate.weight"),
        "dtg": has(".dtg_gate.weight"),
        "value_residual": "gate" if has(".vrl_gate") else "alpha" if has(".vrl_alpha") else "none",
        "bigram_vocab_size": 0,
        "ve_enabled": "ve_shared.embed.weight" in shapes,
    }
    if "bigram.embed.weight" in shapes:
        doc["bigram_vocab_size"], doc["bigram_dim"] = matrix("bigram.embed.weight")
    if doc["ve_enabled"]:
        doc["ve_dim"] = matrix("ve_shared.embed.weight")[1]
    return doc
