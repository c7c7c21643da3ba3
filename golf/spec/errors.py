"""Typed errors a user can cause. `str(err)` is always one line saying what to fix.

Layers above map these to exit codes (CLI) or 4xx responses (service); anything that
is not a GolfError is a bug.
"""

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class GolfError(Exception):
    """Base of every user-caused failure."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class DataError(GolfError):
    """A dataset folder, shard or tokenizer is missing or malformed."""


class ConfigError(GolfError):
    """A model config, hyperparameter file or evaluation parameter is invalid."""


class ArtifactError(GolfError):
    """An artifact cannot be read safely; subclasses name the reason."""


class MismatchError(GolfError):
    """Artifact and dataset disagree (tokenizer sha256 or vocab size)."""


def validation_message(err: ValidationError) -> str:
    """The first pydantic validation error as `field: reason`, counting the rest."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"


def parse_document(
    model: type[M], doc: Any, what: str, prefix: str = "", *, strict: bool = False
) -> M:
    """`model` validated from a user's document; any problem is a ConfigError with one line.

    `what` names the document when it is not a mapping; `prefix` leads the field errors.
    `strict` refuses coercions (`true` or `"128"` for an int).
    """
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} must be a mapping, got {type(doc).__name__}")
    try:
        return model.model_validate(doc, strict=strict)
    except ValidationError as e:
        raise ConfigError(prefix + validation_message(e)) from None
