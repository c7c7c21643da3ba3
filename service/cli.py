"""`golf serve`: plugged into the `golf` command through the `golf.commands` entry point.

FastAPI, uvicorn and Ray are imported when the command runs, so `golf --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from golf.console import err, user_errors
from golf.errors import ConfigError, validation_message


def serve_command(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    data_root: Annotated[
        Path, typer.Option(help="Folder whose subfolders are datasets, named by folder.")
    ] = Path("data"),
    state_dir: Annotated[
        Path, typer.Option(help="SQLite database, stored artifacts, upload temp files.")
    ] = Path("state"),
    workers: Annotated[
        int | None, typer.Option(help="Evaluation actors (default: one per GPU, else 1).")
    ] = None,
    worker_gpus: Annotated[
        float | None, typer.Option(help="GPUs per actor (default: 1 if the cluster has any).")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting one.")
    ] = None,
    api_keys: Annotated[
        Path | None,
        typer.Option(help="Lines `KEY OWNER` or `KEY OWNER admin` (default: a dev key)."),
    ] = None,
) -> None:
    """Serve the evaluation API (OpenAPI at /docs) with Ray workers over window shards."""
    import uvicorn

    from service.app import create_app, load_keys
    from service.settings import Settings

    try:
        settings = Settings(
            host=host,
            port=port,
            data_root=data_root,
            state_dir=state_dir,
            workers=workers,
            worker_gpus=worker_gpus,
            ray_address=ray_address,
            api_keys=api_keys,
        )
    except ValidationError as e:
        raise ConfigError(f"serve option {validation_message(e)}") from None
    keys = load_keys(settings)
    if keys.dev_file is not None:
        (key,) = keys.keys
        err.print(
            f"[bold yellow]no --api-keys: development mode.[/] Admin API key for owner 'dev': "
            f"{key}  (kept in {keys.dev_file}; pass a keys file before sharing this server)"
        )
    uvicorn.run(create_app(settings, keys), host=settings.host, port=settings.port)


def register(app: typer.Typer) -> None:
    """Entry point of the `golf.commands` group."""
    app.command("serve")(user_errors(extra="service")(serve_command))
