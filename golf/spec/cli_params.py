"""Command-line options generated from `EvalParams`, so every command offers the same ones.

`@eval_options()` replaces a command's `params: EvalParams` parameter by one option per
field: `--kebab-case` names, the field's type and default, its description as help with
its bounds (`[1..65536]`) or choices, bools as plain flags (`--reference`). The command
receives one `EvalParams`, validated by `EvalParams.parse` (a bad value is one line
`error: evaluation parameter …`, exit 2, under `user_errors`) and holding as *set* only
the fields the user gave (`model_fields_set`), so a client can send just those.
A new field of `EvalParams` becomes an option of `golf eval`, `golf audit causality` and
`golf submit` without touching them. Torch-free: the client CLI uses it.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic.fields import FieldInfo

from golf.spec.console import current_context
from golf.spec.params import EvalParams
from golf.spec.registry import protocol_names

RecordOverrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="KEY=VALUE over the code's defaults and the log's dump (a Hyperparameters "
        "field or its variable name); repeatable.",
    ),
]
"""`--set` of `golf import` and the client's `golf upload-record`: one option, one help."""

F = TypeVar("F", bound=Callable[..., Any])
PARAMS = "params"  # the parameter of the command that receives the EvalParams


def protocol_help(repeatable: bool) -> str:
    names = ", ".join(protocol_names())
    return f"One of {names}" + ("; repeatable." if repeatable else ".")


def bounds(field: FieldInfo) -> str:
    """A field's numeric bounds as an interval: `[1..65536]`, `(0..100]`, `[≥1]`; or ''."""
    lo = hi = ""
    lo_open = hi_open = False
    for m in field.metadata:  # annotated_types' Ge, Gt, Le, Lt
        if (v := getattr(m, "ge", None)) is not None:
            lo = str(v)
        elif (v := getattr(m, "gt", None)) is not None:
            lo, lo_open = str(v), True
        elif (v := getattr(m, "le", None)) is not None:
            hi = str(v)
        elif (v := getattr(m, "lt", None)) is not None:
            hi, hi_open = str(v), True
    if lo and hi:
        return f"{'(' if lo_open else '['}{lo}..{hi}{')' if hi_open else ']'}"
    if lo:
        return f"[{'>' if lo_open else '≥'}{lo}]"
    if hi:
        return f"[{'<' if hi_open else '≤'}{hi}]"
    return ""


def _choices(annotation: Any) -> tuple[str, ...] | None:
    return tuple(map(str, get_args(annotation))) if get_origin(annotation) is Literal else None


def option_for(name: str, field: FieldInfo) -> tuple[Any, Any]:
    """(annotation, default) of the typer option of one field."""
    annotation, args = field.annotation, get_args(field.annotation)
    optional = get_origin(annotation) in (Union, types.UnionType) and type(None) in args
    inner = next(a for a in args if a is not type(None)) if optional else annotation
    choices = _choices(inner)
    help_text = " ".join(filter(None, [field.description or "", bounds(field)]))
    kebab = "--" + name.replace("_", "-")
    extra: dict[str, Any] = {}
    if choices is not None:
        # Listed, not enforced by click: EvalParams says what is wrong in one line.
        inner, extra["metavar"] = str, "|".join(choices)
    if inner is bool and not optional:
        decls = [kebab] if field.default is False else [f"{kebab}/--no-{name.replace('_', '-')}"]
        return Annotated[bool, typer.Option(*decls, help=help_text)], field.default
    py_type = inner | None if optional else inner
    return Annotated[py_type, typer.Option(kebab, help=help_text, **extra)], field.default


def eval_options(
    *, exclude: Iterable[str] = (), model: type[EvalParams] = EvalParams
) -> Callable[[F], F]:
    """Give the decorated command one option per field of `model`, minus `exclude`.

    The command declares `params: EvalParams`; it is called with the validated params.
    Excluded fields keep their defaults.
    """
    excluded = frozenset(exclude)
    unknown = excluded - set(model.model_fields)
    if unknown:
        raise ValueError(f"eval_options: no such EvalParams fields: {sorted(unknown)}")
    fields = {n: f for n, f in model.model_fields.items() if n not in excluded}

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        if PARAMS not in signature.parameters:
            raise TypeError(f"{command.__name__} has no `{PARAMS}` parameter to fill")
        clash = set(fields) & set(signature.parameters)
        if clash:
            raise TypeError(f"{command.__name__}: parameters named like fields: {sorted(clash)}")
        generated = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=a)
            for name, field in fields.items()
            for a, d in [option_for(name, field)]
        ]
        parameters: list[inspect.Parameter] = []
        for p in signature.parameters.values():
            kept = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)]
            parameters += generated if p.name == PARAMS else kept

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in fields}
            ctx = current_context()
            given = {
                name: value
                for name, value in values.items()
                if ctx is None or _given(ctx.get_parameter_source(name))
            }
            return command(**kwargs, **{PARAMS: model.parse(given)})

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=signature.return_annotation
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper  # type: ignore[return-value]

    return decorate


def _given(source: Any) -> bool:
    """Whether a click ParameterSource says the user gave the value (command line, env)."""
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def option_names(command: Any) -> set[str]:
    """The parameter names of a click command's options (tests use it)."""
    return {p.name for p in command.params if p.param_type_name == "option" and p.name}
