"""Architecture registry: the name an artifact records -> the model class that reads it.

A variant family is one model class plus one name here; the artifact reader, the
quantizer and the trainer take shapes and parameter roles from the registered class,
so none of them changes. Every class takes a ModelConfig, tags its parameters with
roles (golf.models.roles) and exposes `parameter_roles`, `forward_hidden` and `logits`.
"""

import torch

from golf.models.gpt import GPT
from golf.models.relu2 import Relu2GPT
from golf.models.roles import Role
from golf.spec.config import ModelConfig
from golf.spec.errors import ConfigError

# The seed family: the SP1024 GPT of the Parameter Golf records (golf/models/gpt.py). Files
# written before the registry carry no name and mean this one.
DEFAULT_ARCH = "gpt-sp1024"

# The early board (NaiveBaseline .. 2026-03-22): the same blocks with relu² MLPs.
RELU2_ARCH = "gpt-relu2"

ARCHITECTURES: dict[str, type[GPT]] = {DEFAULT_ARCH: GPT, RELU2_ARCH: Relu2GPT}


class UnknownArchitecture(ConfigError):
    """No model class is registered under the name."""


def model_class(arch: str) -> type[GPT]:
    """The class registered as `arch`; UnknownArchitecture lists the known names."""
    try:
        return ARCHITECTURES[arch]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitecture(f"unknown architecture {arch!r:.60}; known: {known}") from None


def meta_model(config: ModelConfig, arch: str = DEFAULT_ARCH) -> GPT:
    """The model of `config` on the meta device: names, shapes and roles, no memory."""
    cls = model_class(arch)
    with torch.device("meta"):
        return cls(config)


def expected_shapes(config: ModelConfig, arch: str = DEFAULT_ARCH) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of `arch` under `config`."""
    return {name: tuple(t.shape) for name, t in meta_model(config, arch).state_dict().items()}


def roles_for(config: ModelConfig, arch: str = DEFAULT_ARCH) -> dict[str, Role]:
    """State-dict name -> Role of `arch` under `config`, as the class declares them."""
    return meta_model(config, arch).parameter_roles()
