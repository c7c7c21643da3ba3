"""`torchrun --nproc_per_node K -m trainer …`: the `golf train` options, on every rank."""

import typer

from trainer.cli import register

app = typer.Typer(add_completion=False)
register(app)
app()
