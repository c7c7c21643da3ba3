"""Board families beyond the seed: which model module reads a record, and its config.

A record's family is a fact of its code, read from the decoded source text (never run):
the looped SP8192 stack has `num_loops` and no document-bounded attention; its
document-bounded descendants pass `cu_seqlens` to flash-attn varlen. Each family module
turns the record's hyperparameters plus the artifact's tensor names and shapes into its
config (`config_from_record`); what the code hard-wires and no hyperparameter carries
(the parallel-residual flavour, the 04-08 lane start read from the environment inside
`GPT.__init__`, the SmearGate BOS fix) comes from `traits`, read here from the source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from golf.formats.artifact import ConfigInvalid, MissingTensor
from golf.models import looped, varlen
from golf.spec.errors import ConfigError

LOOPED, VARLEN = looped.ARCH, varlen.ARCH


def family_of(source: str) -> str | None:
    """The arch name of the family whose code `source` is, or None (another family)."""
    if not re.search(r"\bnum_loops\b", source) or "leaky_relu" not in source:
        return None
    return VARLEN if "cu_seqlens" in source else LOOPED


def traits(source: str) -> dict[str, Any]:
    """What the code fixes beyond its Hyperparameters: the parallel-residual flavour, the
    environment-read lane start of the 04-08 record, the SmearGate BOS fix."""
    out: dict[str, Any] = {}
    if "lane_merge" in source:
        out["parallel_mode"] = "lanes"
        # 04-08 reads its lane start from the environment inside GPT.__init__ (default 7):
        # a default under the hyperparameters, which win when a record declares the field.
        m = re.search(r"""environ\.get\(\s*['"]PARALLEL_START_LAYER['"]\s*,\s*['"]?(\d+)""", source)
        if m:
            out["parallel_start_layer"] = int(m.group(1))
    elif "parallel_residual_start" in source:
        out["parallel_mode"] = "gptj"
    else:
        out["parallel_mode"] = "none"
    out["smear_bos_fix"] = bool(re.search(r"input_ids\[:,\s*1:\]\s*(==\s*1|!=\s*BOS_ID)", source))
    return out


def family_config(
    arch: str, hparams: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]]
) -> BaseModel:
    """The family's config from `traits(source) | hyperparameters` and the tensor shapes; a missing
    key or tensor, or a config the family refuses, is one ConfigInvalid line."""
    build = {LOOPED: looped.config_from_record, VARLEN: varlen.config_from_record}.get(arch)
    if build is None:
        raise ConfigInvalid(f"no board family is registered as {arch!r}")
    try:
        return build(dict(hparams), dict(shapes))
    except KeyError as e:
        raise MissingTensor(f"tensor {e.args[0]}: needed to infer the {arch} config") from None
    except ConfigError as e:
        raise ConfigInvalid(f"{arch}: {e}") from None
