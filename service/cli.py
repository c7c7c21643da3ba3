"""`golf serve`: plugged into the `golf` command through the `golf.commands` entry point.

FastAPI, uvicorn and Ray are imported when the command runs, so `golf --help` stays fast.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from golf.spec.console import err, fail, user_errors
from golf.spec.errors import ConfigError, validation_message

if TYPE_CHECKING:
    from service.settings import Settings


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
    sock = bind_port(settings.host, settings.port)  # before Ray: a busy port is one line
    announce_datasets(settings.data_root)
    keys = load_keys(settings)
    if keys.dev_file is not None:
        (key,) = keys.keys
        err.print(
            f"[bold yellow]no --api-keys: development mode.[/] Admin API key for owner 'dev': "
            f"{key}  (kept in {keys.dev_file}; pass a keys file before sharing this server)"
        )
    err.print(f"dashboard and API at {dashboard_url(settings.host, settings.port)}", markup=False)
    config = uvicorn_config(create_app(settings, keys), settings)
    uvicorn.Server(config).run(sockets=[sock])


def uvicorn_config(app: Any, settings: Settings) -> Any:
    """uvicorn's config with the service's connection limits (service/http.py): a request
    head deadline, a connection cap (and uvicorn's own 503 past it), short keep-alive."""
    import uvicorn

    from service.http import limited_protocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=limited_protocol(settings.header_timeout_s, settings.max_connections),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
    )


def dashboard_url(host: str, port: int) -> str:
    """Where a browser reaches the server: a wildcard bind is reached on localhost."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def bind_port(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now (as uvicorn would bind it); a port in use
    or an address that cannot be bound is `error: …`, exit 2, before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            fail(f"port {port} on {host} is in use; pick another with --port")
        fail(f"cannot bind {host}:{port}: {e.strerror or e}")
    sock.set_inheritable(True)
    return sock


def announce_datasets(root: Path) -> None:
    """One stderr line naming the datasets served (with their val tokens), or a warning
    when the data root is missing or holds none."""
    from service.datasets import Datasets

    if not root.is_dir():
        err.print(
            f"warning: data root {root} does not exist; no datasets are served",
            markup=False,
            soft_wrap=True,
        )
        return
    found = Datasets(root).all()
    if not found:
        err.print(
            f"warning: data root {root} holds no datasets (folders with *_val_*.bin shards "
            "and tokenizer.model); no jobs can run",
            markup=False,
            soft_wrap=True,
        )
        return
    names = ", ".join(f"{d.name} ({d.val_tokens().size:,} val tokens)" for d in found)
    err.print(f"serving {len(found)} dataset(s) from {root}: {names}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Entry point of the `golf.commands` group."""
    app.command("serve")(user_errors(extra="service")(serve_command))
