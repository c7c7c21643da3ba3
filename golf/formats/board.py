"""`golf import RECORD_DIR --artifact F`: a record of the official board as a `.golf` file.

The record folder says how to read its artifact, never by running its code:
- hyperparameters: `Hyperparameters` defaults by AST < the train log's dump < `--set`
  (golf.record); `--set` takes a field name (`rope_dims`) or its variable (`ROPE_DIMS`);
- the family and the constants hyperparameters do not carry, from the code's AST: the MLP
  activation (relu² or LeakyReLU(0.5)²), the length past which `Rotary` NTK-scales its
  base (`Rotary(..., train_seq_len=1024)`; never when the class takes no such argument),
  and whether partial RoPE, XSA, LN scale exist in the code at all (absent: off; present
  but unresolved: an error naming the key);
- sizes and structural variants, from the tensors (golf.formats.pg.infer_config).
The artifact is decoded by golf.formats.detect (one line says which format it was) and
its integers and scales are copied, never requantized; a tensor golf's schemes cannot
hold exactly (a per-tensor scale, a scale that is not an fp16 value, a bf16 restore) is
stored as its dequantized float32 values, so the weights are the record's to the bit.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from golf.formats.artifact import (
    DEFAULT_MAX_DECOMPRESSED,
    Artifact,
    ConfigInvalid,
    DtypeMismatch,
    Provenance,
    read_artifact,
    read_file,
    write_artifact,
)
from golf.formats.containers import Entry
from golf.formats.detect import read_reference
from golf.formats.families import family_config, family_of, traits
from golf.formats.pg import infer_config
from golf.formats.quant import QMAX, QTensor, Scheme
from golf.models.registry import DEFAULT_ARCH, RELU2_ARCH
from golf.spec.errors import ConfigError, DataError

NO_NTK = 1 << 20
"""rope_train_seq_len for a Rotary that never rescales its base (ModelConfig's maximum)."""


@dataclass(frozen=True)
class Imported:
    """What `import_record` wrote and how it decided."""

    artifact: Artifact
    format: str
    arch: str
    hparams: dict[str, Any]
    origins: dict[str, str]


def import_record(
    record_dir: str | Path,
    artifact_path: str | Path,
    out_path: str | Path,
    *,
    tokenizer: str | Path,
    overrides: Mapping[str, str] | None = None,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Imported:
    """Read the record folder and its artifact, write `out_path` (.golf), return it."""
    from golf.record import read_record

    rec = read_record(record_dir)
    tree = rec.tree()
    code = rec.code_hparams()
    sets = _attribute_names(code, overrides or {})
    h = rec.hparams(sets)
    data = read_file(artifact_path, max_decompressed)
    ref = read_reference(data, limit=max_decompressed)
    try:
        tokenizer_sha256 = hashlib.sha256(Path(tokenizer).read_bytes()).hexdigest()
    except OSError as e:
        raise DataError(f"cannot read tokenizer {tokenizer}: {e.strerror or e}") from None
    shapes = {name: tuple(e.values.shape) for name, e in ref.entries.items()}
    family = family_of(rec.source.code) if rec.source is not None else None
    if family is not None:  # a board family with its own module (golf.formats.families)
        arch = family
        code_traits = traits(rec.source.code)
        blind = code_traits | h.values
        origins = {k: "the record's code" for k in code_traits}
        config = family_config(family, blind, shapes)
    else:
        arch = _arch(tree)
        blind, origins = _blind_fields(tree, rec, h)
        config = infer_config(shapes, blind)
    hp_vocab = h.values.get("vocab_size")
    if hp_vocab is not None and int(hp_vocab) != config.vocab_size:
        raise ConfigInvalid(
            f"vocab_size {hp_vocab} ({h.origin.get('vocab_size', 'code')}) but tok_emb.weight "
            f"has {config.vocab_size} rows"
        )
    tensors = {name: to_qtensor(name, e) for name, e in ref.entries.items()}
    source = rec.source
    provenance = Provenance(
        trainer_version=f"record {rec.name}",
        seeds=(int(h.values["seed"]),) if str(h.values.get("seed", "")).isdigit() else (),
        notes={
            "imported_from": Path(artifact_path).name,
            "imported_sha256": hashlib.sha256(data).hexdigest(),
            "format": ref.description,
            "record": rec.name,
            "overrides": ",".join(f"{k}={v}" for k, v in sorted(sets.items())),
        },
    )
    write_artifact(
        out_path,
        tensors,
        config,
        tokenizer_sha256=tokenizer_sha256,
        vocab_size=config.vocab_size,
        provenance=provenance,
        code_bytes=source.submitted_bytes if source is not None else 0,
        arch=arch,
    )
    artifact = read_artifact(out_path, max_decompressed=max_decompressed)
    return Imported(artifact, ref.description, arch, blind, origins)


def _attribute_names(code: Any, overrides: Mapping[str, str]) -> dict[str, str]:
    """`--set` keys as Hyperparameters field names (a variable name maps to its field)."""
    by_env = {env: name for name, env in code.env.items()}
    known = set(code.values) | set(code.unresolved)
    out = {}
    for key, value in overrides.items():
        name = key if key in known else by_env.get(key)
        if name is None:
            raise ConfigError(
                f"--set {key}: not a Hyperparameters field of the record or its variable"
            )
        out[name] = value
    return out


def _class(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name), None)


def _arch(tree: ast.Module) -> str:
    """The family from the MLP's forward: relu² -> gpt-relu2, LeakyReLU(0.5)² -> gpt-sp1024."""
    mlp = _class(tree, "MLP")
    if mlp is None:
        raise ConfigInvalid("the record's code has no MLP class: its family is not known")
    forward = next(
        (n for n in mlp.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None
    )
    text = ast.unparse(forward) if forward is not None else ""
    if "leaky_relu" in text:
        if "0.5" in text and ("square" in text or "** 2" in text):
            return DEFAULT_ARCH
        raise ConfigInvalid("MLP uses a LeakyReLU other than LeakyReLU(0.5)²: no family for it")
    if "relu" in text and ("square" in text or "** 2" in text):
        return RELU2_ARCH
    raise ConfigInvalid("MLP activation is neither relu² nor LeakyReLU(0.5)²: no family for it")


def _mentions(tree: ast.Module, word: str) -> bool:
    """Whether any name, attribute or argument of the code mentions `word`."""
    for node in ast.walk(tree):
        for ident in (
            getattr(node, "id", None),
            getattr(node, "attr", None),
            getattr(node, "arg", None),
        ):
            if isinstance(ident, str) and word in ident.lower():
                return True
    return False


def _blind_fields(tree: ast.Module, rec: Any, h: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The config fields no tensor reveals, each from the hyperparameters or the code."""
    doc: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def hparam(
        field: str, key: str | None = None, *, absent: Any = None, feature: str = ""
    ) -> None:
        key = key or field
        if key in h.values:
            doc[field] = h.values[key]
            origins[field] = f"{key} ({h.origin.get(key, 'code')})"
            return
        if absent is not None and feature and not _mentions(tree, feature):
            doc[field] = absent
            origins[field] = f"not in the code ({feature}): off"
            return
        reason = h.unresolved.get(key, "not a Hyperparameters field")
        raise ConfigInvalid(f"hyperparameter {key} not determined ({reason}); pass --set {key}=…")

    hparam("logit_softcap")
    hparam("rope_base")
    hparam("rope_dims", absent=0, feature="rope_dims")
    hparam("xsa_last_n", absent=0, feature="xsa")
    hparam("ln_scale", absent=False, feature="ln_scale")
    if "qk_gain_init" in h.values:  # q_gain itself is a tensor; the init only documents
        hparam("qk_gain_init")
    if "ve_layers" in h.values:
        hparam("ve_layers")
    doc["recur_layers"] = ()
    origins["recur_layers"] = "early board: no recurrence"
    ntk = [a for a in rec.literal_call_args(["Rotary"]) if a.keyword == "train_seq_len"]
    lengths = {int(a.value) for a in ntk if isinstance(a.value, int)}
    if len(lengths) > 1:
        raise ConfigInvalid(f"Rotary(train_seq_len=…) is called with different lengths {lengths}")
    if lengths:
        doc["rope_train_seq_len"] = lengths.pop()
        origins["rope_train_seq_len"] = (
            f"Rotary(train_seq_len={doc['rope_train_seq_len']}) in the code"
        )
    elif _rotary_rescales(tree):
        raise ConfigInvalid(
            "Rotary NTK-rescales but its train_seq_len is not a literal in the code"
        )
    else:
        doc["rope_train_seq_len"] = NO_NTK
        origins["rope_train_seq_len"] = "Rotary never rescales its base"
    return doc, origins


def _rotary_rescales(tree: ast.Module) -> bool:
    rotary = _class(tree, "Rotary")
    return rotary is not None and "train_seq_len" in ast.unparse(rotary)


def to_qtensor(name: str, e: Entry) -> QTensor:
    """An entry in golf's schemes, bit-exact to what the record's dequantizer restores."""
    if e.scale is None:
        if not e.values.is_floating_point():
            raise DtypeMismatch(f"tensor {name}: passthrough dtype {e.values.dtype} is not float")
        values = _restored(e.values.float(), e.restore)
        if e.values.dtype == torch.float16 and e.restore in (None, torch.float16, torch.float32):
            return QTensor(Scheme.FP16, e.values.contiguous())
        return QTensor(Scheme.FP32, values.contiguous())
    per_row = (
        e.values.ndim == 2
        and e.scale.ndim == 1
        and e.scale.dtype == torch.float16
        and e.restore in (None, torch.float32)
        and bool((e.scale > 0).all())
        and bool(torch.isfinite(e.scale).all())
        and _amax(e.values) <= QMAX[Scheme.INT8]
    )
    if per_row:
        fits6 = _amax(e.values) <= QMAX[Scheme.INT6]
        scheme = Scheme.INT6 if (e.bits or 8) <= 6 and fits6 else Scheme.INT8
        return QTensor(scheme, e.values.contiguous(), e.scale.contiguous())
    return QTensor(Scheme.FP32, _restored(e.dequantize(), e.restore).contiguous())


def _amax(values: Tensor) -> int:
    """max |q| of an integer tensor (0 when empty; int16 so that -128 does not wrap)."""
    return int(values.to(torch.int16).abs().max()) if values.numel() else 0


def _restored(values: Tensor, restore: torch.dtype | None) -> Tensor:
    """Float32 values after the record's cast to `restore` (bf16/fp16 round; fp32 exact)."""
    if restore in (torch.bfloat16, torch.float16):
        return values.to(restore).float()
    return values


def describe(imported: Imported) -> str:
    """One line per decision, for `golf import`'s output."""
    lines = [f"format: {imported.format}", f"family: {imported.arch}"]
    lines += [f"{k}: {imported.hparams[k]!r} from {v}" for k, v in imported.origins.items()]
    return "\n".join(lines)
