"""Architecture registry: the name an artifact records -> the model class that reads it.

A variant family is one model module plus one name here; the artifact reader, the
quantizer and the trainer take shapes and parameter roles from the registered class,
so none of them changes. Every class takes its config (the seed family a ModelConfig;
another family names its own pydantic config class as `config_class`), tags its
parameters with roles (golf.models.roles) and exposes `parameter_roles`, `forward_hidden`
and `logits`.
"""

from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from golf.models.gpt import GPT
from golf.models.looped import LoopedGPT
from golf.models.parres import ParresGPT
from golf.models.recur import RecurGPT
from golf.models.relu2 import PairHashRelu2GPT, Relu2GPT
from golf.models.roles import Role
from golf.models.ternary import TernaryGPT
from golf.models.varlen import VarlenGPT
from golf.spec.config import ModelConfig
from golf.spec.errors import ConfigError

# The seed family: the SP1024 GPT of the Parameter Golf records (golf/models/gpt.py). Files
# written before the registry carry no name and mean this one.
DEFAULT_ARCH = "gpt-sp1024"

# The early board (NaiveBaseline .. 2026-03-22): the same blocks with relu² MLPs.
RELU2_ARCH = "gpt-relu2"

# 2026-03-19_smeargate_orthoinit_muonwd: relu² with its own pair hash and keep-gate.
PAIRHASH_ARCH = "gpt-relu2-pairhash"

ARCHITECTURES: dict[str, type[nn.Module]] = {
    DEFAULT_ARCH: GPT,
    RELU2_ARCH: Relu2GPT,
    PAIRHASH_ARCH: PairHashRelu2GPT,
    "looped-sp8192": LoopedGPT,  # records 2026-04-05 … 2026-04-09
    "varlen-sp8192": VarlenGPT,  # records 2026-04-10 … 2026-04-29
    "recur-sp4096": RecurGPT,  # records 2026-04-03, 2026-04-04
    "ternary-unet": TernaryGPT,  # record 2026-03-24 (ternary U-Net, base-3 packing)
    "parres-sp1024": ParresGPT,  # record 2026-03-31
}


class UnknownArchitecture(ConfigError):
    """No model class is registered under the name."""


def model_class(arch: str) -> type[Any]:
    """The class registered as `arch`; UnknownArchitecture lists the known names."""
    try:
        return ARCHITECTURES[arch]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitecture(f"unknown architecture {arch!r:.60}; known: {known}") from None


def config_class(arch: str) -> type[Any]:
    """The pydantic config class the family of `arch` is built from (ModelConfig unless the
    class names another as `config_class`)."""
    return getattr(model_class(arch), "config_class", ModelConfig)


def parse_config(doc: dict[str, Any], arch: str = DEFAULT_ARCH) -> BaseModel:
    """Validate a config document for `arch`; ConfigError (one line) on any problem."""
    return config_class(arch).parse(doc)


def meta_model(config: BaseModel, arch: str = DEFAULT_ARCH) -> Any:
    """The model of `config` on the meta device: names, shapes and roles, no memory."""
    cls = model_class(arch)
    with torch.device("meta"):
        return cls(config)


def expected_shapes(config: BaseModel, arch: str = DEFAULT_ARCH) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of `arch` under `config`."""
    return {name: tuple(t.shape) for name, t in meta_model(config, arch).state_dict().items()}


def roles_for(config: BaseModel, arch: str = DEFAULT_ARCH) -> dict[str, Role]:
    """State-dict name -> Role of `arch` under `config`, as the class declares them."""
    return meta_model(config, arch).parameter_roles()
