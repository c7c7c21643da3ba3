"""The `golf` command. Core commands live here; other layers plug in through the
`golf.commands` entry-point group so this module never imports them."""

from importlib.metadata import entry_points

import typer

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="golf-eval: score Parameter Golf artifacts."
)


def _load_plugins() -> None:
    for ep in entry_points(group="golf.commands"):
        ep.load()(app)


def main() -> None:
    _load_plugins()
    app()
