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
from dataclasses import asdict, dataclass, field
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
    ShapeMismatch,
    read_artifact,
    read_file,
    write_artifact,
)
from golf.formats.containers import Entry
from golf.formats.detect import read_reference
from golf.formats.families import FAMILIES, family_config, family_of, traits
from golf.formats.pg import BANKS, infer_config
from golf.formats.quant import QMAX, QTensor, Scheme
from golf.models.registry import DEFAULT_ARCH, PAIRHASH_ARCH, RELU2_ARCH
from golf.spec.errors import ConfigError, DataError

NO_NTK = 1 << 20
"""rope_train_seq_len for a Rotary that never rescales its base (ModelConfig's maximum)."""


@dataclass(frozen=True)
class RecordFacts:
    """What `golf import` takes from a record folder: names and numbers, never code.

    `blind`: the config fields no tensor reveals (ModelConfig names), `origins`: where
    each came from; `vocab_size` and `seed` as the hyperparameters say; `code_bytes`: the
    submitted script's size (counted in the budget); `overrides`: the `--set`s applied.
    Golden fixtures keep these as JSON, so their tests need no record code.
    """

    record: str
    arch: str
    blind: dict[str, Any]
    origins: dict[str, str]
    vocab_size: int | None = None
    seed: int | None = None
    code_bytes: int = 0
    overrides: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RecordFacts:
        try:
            return cls(**doc)
        except TypeError as e:
            raise ConfigError(f"record facts: {e}") from None


@dataclass(frozen=True)
class Imported:
    """What `import_record` wrote and how it decided."""

    artifact: Artifact
    format: str
    facts: RecordFacts


def read_facts(record_dir: str | Path, overrides: Mapping[str, str] | None = None) -> RecordFacts:
    """The family, the tensor-blind config fields and the budget facts of a record folder."""
    return _read_facts(record_dir, overrides)[0]


def _read_facts(
    record_dir: str | Path, overrides: Mapping[str, str] | None
) -> tuple[RecordFacts, dict[str, str]]:
    """`read_facts`, and the provenance notes naming the record's code (its sha256)."""
    from golf.record import RecordError, read_record

    rec = read_record(record_dir)
    if rec.source is None:  # say why the code could not be read, not only that it was not
        raise RecordError(rec.problems[0] if rec.problems else f"{rec.name}: no code")
    tree = rec.tree()
    sets = _attribute_names(rec.code_hparams(), overrides or {})
    h = rec.hparams(sets)
    family = family_of(rec.source.code)
    if family is not None:  # a board family with its own module (golf.formats.families)
        code_traits = traits(rec.source.code)
        plain = (bool, int, float, str)
        blind = code_traits | {k: v for k, v in h.values.items() if isinstance(v, plain)}
        origins = {k: "the record's code" for k in code_traits}
        arch = family
    else:
        blind, origins = _blind_fields(tree, rec, h)
        arch = _arch(tree, h)
    seed = h.values.get("seed")
    vocab = h.values.get("vocab_size")
    facts = RecordFacts(
        record=rec.name,
        arch=arch,
        blind=blind,
        origins=origins,
        vocab_size=int(vocab) if isinstance(vocab, int) else None,
        seed=int(seed) if isinstance(seed, int) else None,
        code_bytes=rec.source.submitted_bytes,
        overrides=dict(sets),
    )
    return facts, code_notes(rec.source)


def code_notes(source: Any) -> dict[str, str]:
    """Provenance notes naming the code an import read: the submitted script's name and
    sha256 (the bytes the rules count), and a stub's target's."""
    from golf.record.files import read_bytes
    from golf.record.source import MAX_SUBMITTED_BYTES

    submitted = read_bytes(source.path.parent, source.path, MAX_SUBMITTED_BYTES)
    notes = {
        "code_file": source.path.name,
        "code_sha256": hashlib.sha256(submitted).hexdigest(),
    }
    if source.target is not None:
        notes["code_target"] = source.target.name
        notes["code_target_sha256"] = hashlib.sha256(source.code.encode("utf-8")).hexdigest()
    return notes


def import_record(
    record_dir: str | Path,
    artifact_path: str | Path,
    out_path: str | Path,
    *,
    tokenizer: str | Path,
    overrides: Mapping[str, str] | None = None,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
) -> Imported:
    """Read the record folder and its artifact, write `out_path` (.golf), return it.

    `golf import` and the service's `POST /v1/artifacts/import` both call this: the
    provenance names the record (its folder's name), its code and the original artifact
    (file name and sha256 of each)."""
    facts, notes = _read_facts(record_dir, overrides)
    return import_artifact(
        artifact_path,
        facts,
        out_path,
        tokenizer=tokenizer,
        max_decompressed=max_decompressed,
        notes=notes,
    )


def import_artifact(
    artifact_path: str | Path,
    facts: RecordFacts,
    out_path: str | Path,
    *,
    tokenizer: str | Path,
    max_decompressed: int = DEFAULT_MAX_DECOMPRESSED,
    notes: Mapping[str, str] | None = None,
) -> Imported:
    """A record's artifact as `.golf`, given the facts of its folder (and `notes`, more
    provenance: `import_record`'s names the code)."""
    data = read_file(artifact_path, max_decompressed)
    ref = read_reference(data, limit=max_decompressed)
    try:
        tokenizer_sha256 = hashlib.sha256(Path(tokenizer).read_bytes()).hexdigest()
    except OSError as e:
        raise DataError(f"cannot read tokenizer {tokenizer}: {e.strerror or e}") from None
    entries = unbank(ref.entries)
    shapes = {name: tuple(e.values.shape) for name, e in entries.items()}
    if facts.arch == PAIRHASH_ARCH:  # its modules size the config's bigram/smear fields
        renames = {
            "bigram_hash.table.weight": "bigram.embed.weight",
            "smeargate.gate": "smear.gate",
        }
        shapes = {renames.get(k, k): v for k, v in shapes.items()}
    if facts.arch in FAMILIES:
        config = family_config(facts.arch, facts.blind, shapes)
    else:
        config = infer_config(shapes, facts.blind)
    if facts.vocab_size is not None and facts.vocab_size != config.vocab_size:
        raise ConfigInvalid(
            f"vocab_size {facts.vocab_size} in the hyperparameters but tok_emb.weight has "
            f"{config.vocab_size} rows"
        )
    tensors = {name: to_qtensor(name, e) for name, e in entries.items()}
    provenance = Provenance(
        trainer_version=f"record {facts.record}",
        seeds=(facts.seed,) if facts.seed is not None and facts.seed >= 0 else (),
        notes={
            "imported_from": Path(artifact_path).name,
            "imported_sha256": hashlib.sha256(data).hexdigest(),
            "format": ref.description,
            "record": facts.record,
            "overrides": ",".join(f"{k}={v}" for k, v in sorted(facts.overrides.items())),
            **(notes or {}),
        },
    )
    write_artifact(
        out_path,
        tensors,
        config,
        tokenizer_sha256=tokenizer_sha256,
        vocab_size=config.vocab_size,
        provenance=provenance,
        code_bytes=facts.code_bytes,
        arch=facts.arch,
    )
    artifact = read_artifact(out_path, max_decompressed=max_decompressed)
    return Imported(artifact, ref.description, facts)


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


def _arch(tree: ast.Module, h: Any = None) -> str:
    """The family from the MLP's forward: relu² -> gpt-relu2, LeakyReLU(0.5)² -> gpt-sp1024.

    The LeakyReLU slope is read where the code takes it from: a literal, or a constructor
    argument threaded from a hyperparameter (03-29: `neg_slope=args.negative_slope`), then
    resolved like every hyperparameter (`h`: code defaults < log < --set; the code's
    defaults when None). A slope other than 0.5 is refused: golf's family hard-wires it."""
    mlp = _class(tree, "MLP")
    if mlp is None:
        raise ConfigInvalid("the record's code has no MLP class: its family is not known")
    forward = _method(mlp, "forward")
    text = ast.unparse(forward) if forward is not None else ""
    squared = "square" in text or "** 2" in text
    leaky = next(
        (
            n
            for n in ast.walk(forward or mlp)
            if isinstance(n, ast.Call) and _called_name(n.func) == "leaky_relu"
        ),
        None,
    )
    if leaky is not None:
        if not squared:
            raise ConfigInvalid("MLP uses a LeakyReLU that is not squared: no family for it")
        if h is None:
            from golf.record.hparams import code_defaults

            h = code_defaults(tree)
        slope, origin = _leaky_slope(tree, mlp, leaky, h)
        if slope != 0.5:
            raise ConfigInvalid(
                f"MLP uses LeakyReLU({slope:g})² (slope from {origin}); golf's {DEFAULT_ARCH} "
                "runs LeakyReLU(0.5)² only: no family for it"
            )
        return DEFAULT_ARCH
    if "relu" in text and squared:
        pair_hash = _class(tree, "BigramHash")
        if pair_hash is not None and "92821" in ast.unparse(pair_hash):
            smear = _class(tree, "SmearGate")
            if smear is None or "g * x + (1.0 - g)" not in ast.unparse(smear):
                raise ConfigInvalid("BigramHash(92821) without the keep-gate SmearGate: no family")
            return PAIRHASH_ARCH
        return RELU2_ARCH
    raise ConfigInvalid("MLP activation is neither relu² nor LeakyReLU(0.5)²: no family for it")


TORCH_LEAKY_SLOPE = 0.01
"""F.leaky_relu's negative_slope when the call passes none."""


def _leaky_slope(tree: ast.Module, mlp: ast.ClassDef, call: ast.Call, h: Any) -> tuple[float, str]:
    """The negative_slope of the MLP's `leaky_relu` call, and where it came from."""
    arg = next((kw.value for kw in call.keywords if kw.arg == "negative_slope"), None)
    if arg is None and len(call.args) > 1:
        arg = call.args[1]
    if arg is None:
        return TORCH_LEAKY_SLOPE, "F.leaky_relu's default"
    if isinstance(arg, ast.Constant) and isinstance(arg.value, int | float):
        return float(arg.value), "a literal in MLP.forward"
    param = _init_param(mlp, arg)
    if param is None:
        raise ConfigInvalid(
            f"MLP's LeakyReLU slope {ast.unparse(arg)} is neither a literal nor a constructor "
            "argument: no family for it"
        )
    passed = [
        kw.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == param.arg
    ]
    hparams = {v.attr for v in passed if isinstance(v, ast.Attribute)}
    literals = {v.value for v in passed if isinstance(v, ast.Constant)}
    if len(hparams) + len(literals) > 1:
        raise ConfigInvalid(f"MLP's LeakyReLU slope {param.arg} is passed several values")
    if hparams:
        name = hparams.pop()
        if name in h.values and isinstance(h.values[name], int | float):
            return float(h.values[name]), f"{name} ({h.origin.get(name, 'code')})"
        reason = h.unresolved.get(name, "not a Hyperparameters field")
        key = h.env.get(name, name)
        raise ConfigInvalid(
            f"hyperparameter {name} (the LeakyReLU slope) not determined ({reason}); "
            f"pass --set {key}=…"
        )
    if literals:
        value = literals.pop()
        if isinstance(value, int | float):
            return float(value), f"{param.arg}={value} in the code"
    if param.default is not None and isinstance(param.default, ast.Constant):
        if isinstance(param.default.value, int | float):
            return float(param.default.value), f"MLP's default {param.arg}={param.default.value}"
    raise ConfigInvalid(f"MLP's LeakyReLU slope {param.arg} cannot be read from the code")


@dataclass(frozen=True)
class _Param:
    arg: str
    default: ast.expr | None


def _init_param(mlp: ast.ClassDef, expr: ast.expr) -> _Param | None:
    """The `MLP.__init__` parameter a forward expression `self.X` (or `X`) stores."""
    init = _method(mlp, "__init__")
    if init is None:
        return None
    stored = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", None)
    source = None
    for node in ast.walk(init):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Attribute)
            and node.targets[0].attr == stored
            and isinstance(node.value, ast.Name)
        ):
            source = node.value.id
    source = source or stored
    args = init.args.args + init.args.kwonlyargs
    defaults = [None] * (len(init.args.args) - len(init.args.defaults)) + list(init.args.defaults)
    defaults += list(init.args.kw_defaults)
    for a, d in zip(args, defaults, strict=True):
        if a.arg == source:
            return _Param(a.arg, d)
    return None


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _called_name(func: ast.expr) -> str:
    return getattr(func, "attr", None) or getattr(func, "id", None) or ""


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
    doc["recur_layers"] = []  # JSON-shaped: facts travel as JSON
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
    elif (threaded := _threaded_hparam(tree, "train_seq_len", h.values)) is not None:
        doc["rope_train_seq_len"] = int(h.values[threaded])
        origins["rope_train_seq_len"] = f"Rotary(train_seq_len=args.{threaded}) in the code"
    elif _rotary_rescales(tree) and _rotary_length_is_hparam(tree) and "train_seq_len" in h.values:
        # Rotary(..., train_seq_len=h.train_seq_len) (04-01 …): the training length itself
        doc["rope_train_seq_len"] = int(h.values["train_seq_len"])
        origins["rope_train_seq_len"] = "Rotary(train_seq_len=h.train_seq_len): train_seq_len"
    elif _rotary_rescales(tree):
        raise ConfigInvalid(
            "Rotary NTK-rescales but its train_seq_len is not a literal in the code"
        )
    else:
        doc["rope_train_seq_len"] = NO_NTK
        origins["rope_train_seq_len"] = "Rotary never rescales its base"
    return doc, origins


def _threaded_hparam(tree: ast.Module, keyword: str, values: Mapping[str, Any]) -> str | None:
    """The hyperparameter passed as `keyword=args.NAME` somewhere in the code, if one is."""
    names = {
        kw.value.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == keyword and isinstance(kw.value, ast.Attribute) and kw.value.attr in values
    }
    if len(names) > 1:
        raise ConfigInvalid(f"{keyword} is passed different hyperparameters {sorted(names)}")
    return names.pop() if names else None


def _rotary_length_is_hparam(tree: ast.Module) -> bool:
    """Every `Rotary(...)` call passes train_seq_len as `<h>.train_seq_len` or as a
    parameter named train_seq_len (the constructors forward the hyperparameter)."""
    found = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Rotary":
            for kw in node.keywords:
                if kw.arg != "train_seq_len":
                    continue
                named = getattr(kw.value, "attr", None) or getattr(kw.value, "id", None)
                if named != "train_seq_len":
                    return False
                found = True
    return found


def _rotary_rescales(tree: ast.Module) -> bool:
    rotary = _class(tree, "Rotary")
    return rotary is not None and "train_seq_len" in ast.unparse(rotary)


def unbank(entries: Mapping[str, Entry]) -> dict[str, Entry]:
    """Split 3-D parameter banks (`qo_bank`, ...) into the per-block matrices they stack,
    as golf.formats.pg does for `import-pg` (most records unbank before saving)."""
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
                out[f"blocks.{i}.{part}"] = Entry(e.values[k * n + i], e.scale, e.bits, e.restore)
    return out


def to_qtensor(name: str, e: Entry) -> QTensor:
    """An entry in golf's schemes, bit-exact to what the record's dequantizer restores."""
    if e.scale is None:
        if not e.values.is_floating_point():
            raise DtypeMismatch(f"tensor {name}: passthrough dtype {e.values.dtype} is not float")
        values = _restored(e.values.float(), e.restore)
        if e.values.dtype == torch.float16 and e.restore in (None, torch.float16, torch.float32):
            return QTensor(Scheme.FP16, e.values.contiguous())
        if e.restore == torch.bfloat16 and torch.equal(values.half().float(), values):
            # bf16 values inside fp16's range are fp16 values: half the bytes, same numbers
            # (the ternary record's 65M restored weights would inflate past the read cap)
            return QTensor(Scheme.FP16, values.half().contiguous())
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
    facts = imported.facts
    lines = [f"format: {imported.format}", f"family: {facts.arch}"]
    lines += [f"{k}: {facts.blind[k]!r} from {v}" for k, v in facts.origins.items()]
    return "\n".join(lines)
