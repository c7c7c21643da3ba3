"""Board families beyond the seed: which model module reads a record, and its config.

A record's family is a fact of its code, read from the decoded source text (never run):
the looped SP8192 stack has `num_loops` and no document-bounded attention; its
document-bounded descendants pass `cu_seqlens` to flash-attn varlen. Each family module
turns the record's hyperparameters plus the artifact's tensor names and shapes into its
config (`config_from_record`); what the code hard-wires and no hyperparameter carries
(the parallel-residual flavour, the 04-08 lane start read from the environment inside
`GPT.__init__`, the SmearGate BOS fix) comes from `traits`, read here from the source.
The ternary record (03-24) is known by its base-3 unpacker and ternary layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from golf.formats.artifact import ConfigInvalid, MissingTensor
from golf.models import looped, parres, recur, ternary, varlen
from golf.spec.errors import ConfigError

LOOPED, VARLEN, RECUR, TERNARY = looped.ARCH, varlen.ARCH, recur.ARCH, ternary.ARCH
PARRES = parres.ARCH
FAMILIES = (LOOPED, VARLEN, RECUR, TERNARY, PARRES)
"""The archs whose config comes from `family_config` (the rest: golf.formats.pg)."""


def family_of(source: str) -> str | None:
    """The arch name of the family whose code `source` is, or None (another family)."""
    if "def unpack_ternary" in source and "class TernaryLinear" in source:
        return TERNARY  # 03-24: BitNet ternary U-Net, base-3 packed artifact
    if "leaky_relu" not in source:
        return None
    if all(w in source for w in ("_v2p_recur", "parallel_post_lambdas", "repeat_mlp", "bigram")):
        return PARRES  # 03-31: sp1024 lambda lanes + mini recurrence, untied repeat MLPs
    if "_get_virtual_layers" in source and "ve_shared" in source and "bigram" not in source:
        return RECUR  # 04-03, 04-04: sp4096 depth recurrence over physical blocks
    if not re.search(r"\bnum_loops\b", source):
        return None
    return VARLEN if "cu_seqlens" in source else LOOPED


def traits(source: str) -> dict[str, Any]:
    """What the code of `source`'s family fixes beyond its Hyperparameters: the looped
    stack's parallel-residual flavour (and the lane start 04-08 reads from the environment
    inside GPT.__init__), the recurrence records' skip rule, the SmearGate BOS fix."""
    family = family_of(source)
    out: dict[str, Any] = {}
    if family == LOOPED:
        if "lane_merge" in source:
            out["parallel_mode"] = "lanes"
            # a default under the hyperparameters, which win when a record declares it
            m = re.search(
                r"""environ\.get\(\s*['"]PARALLEL_START_LAYER['"]\s*,\s*['"]?(\d+)""", source
            )
            if m:
                out["parallel_start_layer"] = int(m.group(1))
        elif "parallel_residual_start" in source:
            out["parallel_mode"] = "gptj"
        else:
            out["parallel_mode"] = "none"
    elif family == RECUR:
        # 04-03 clamps the skip index and spends every skip; 04-04 spends the first ones
        clamp = re.search(r"min\(i,\s*self\.num_skip_weights", source)
        out["skip_rule"] = "clamp" if clamp else "first"
    elif family == PARRES:
        # Rotary(..., train_seq_len=1024): NTK-scaled past a literal, not the hyperparameter
        lengths = set(re.findall(r"Rotary\([^()]*train_seq_len\s*=\s*(\d+)", source))
        if len(lengths) == 1:
            out["rope_train_seq_len"] = int(lengths.pop())
    elif family == VARLEN:
        out["smear_bos_fix"] = bool(
            re.search(r"input_ids\[:,\s*1:\]\s*(==\s*1|!=\s*BOS_ID)", source)
        )
    return out


def family_config(
    arch: str, hparams: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
) -> BaseModel:
    """The family's config from `traits(source) | hyperparameters` and the tensor shapes; a missing
    key or tensor, or a config the family refuses, is one ConfigInvalid line."""
    builders = {
        LOOPED: looped.config_from_record,
        VARLEN: varlen.config_from_record,
        RECUR: recur.config_from_record,
        TERNARY: ternary.config_from_record,
        PARRES: parres.config_from_record,
    }
    build = builders.get(arch)
    if build is None:
        raise ConfigInvalid(f"no board family is registered as {arch!r}")
    try:
        return build(dict(hparams), dict(shapes))
    except KeyError as e:
        raise MissingTensor(f"tensor {e.args[0]}: needed to infer the {arch} config") from None
    except ConfigError as e:
        raise ConfigInvalid(f"{arch}: {e}") from None
