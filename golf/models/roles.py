"""What each parameter is for, declared by the model beside the parameter itself.

The role decides how a tensor is stored in the artifact (golf.formats.quant.scheme_for) and
which optimizer trains it (trainer.train.param_groups), so neither guesses from names:
a model tags every parameter when it creates it, and a parameter left untagged is an
error wherever roles are read, never silently quantized or put on the wrong optimizer.
"""

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from torch import Tensor, nn

T = TypeVar("T", bound=nn.Module | Tensor)

# The attribute a tag lives in. It sits on the Parameter object, so it survives
# `load_state_dict`, in-place init and `.to(device)`, but not `copy.deepcopy` (nor a
# conversion that swaps Parameters): a model keeps a snapshot for those (`roles_of`).
ATTRIBUTE = "golf_role"


class Role(StrEnum):
    MATRIX = "matrix"  # attention / MLP / projection weights: int6, Muon
    EMBEDDING = "embedding"  # token-indexed tables and an untied head: int8, AdamW embed_lr
    CONTROL = "control"  # gains, mixes, gates, scales: fp16, AdamW scalar_lr


class MissingRole(ValueError):
    """A model holds a tensor it declared no role for: a bug in the model definition."""


def role(x: T, r: Role) -> T:
    """Tag a parameter, or every parameter a module holds now, with `r`; returns `x`."""
    params = [x] if isinstance(x, Tensor) else list(x.parameters())
    for p in params:
        setattr(p, ATTRIBUTE, Role(r))
    return x


def roles_of(module: nn.Module, declared: Mapping[str, Role] | None = None) -> dict[str, Role]:
    """State-dict name -> role of every tensor of `module`; MissingRole for an untagged one.

    `declared` is a snapshot of `roles_of` taken when the module was built; it answers
    for a tensor whose Parameter a copy has replaced, never for a tensor added since.
    """
    declared = declared or {}
    roles: dict[str, Role] = {}
    for name, t in module.state_dict(keep_vars=True).items():
        r = getattr(t, ATTRIBUTE, None) or declared.get(name)
        if r is None:
            raise MissingRole(
                f"{type(module).__name__} tensor {name} declares no role; "
                "tag it with golf.models.roles.role(..., Role.X) where it is created"
            )
        roles[name] = r
    return roles
