"""`pip install 'golf-eval[client]'` is a lean client: no torch, no Ray, a working `golf`.

A fresh virtual environment gets a non-editable install of a copy of the sources (pip
and setuptools from the registry, as a user's machine would; the pip cache is used), then
the client CLI talks to a stub HTTP server and the engine's commands say what to install.
About 10 s with a warm pip cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import venv
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "golf", "trainer", "service", "workers", "clients"]
ARTIFACT_ID = "cd" * 32


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding `golf-eval[client]`, installed from a copy of the sources
    (so that the build's egg-info and build/ never land in the working tree)."""
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    pip += ["--disable-pip-version-check", f"{src}[client]"]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return env_dir / "bin"


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLF_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_client_install_has_neither_torch_nor_ray(client_venv: Path) -> None:
    for module in ("torch", "ray", "fastapi", "sentencepiece"):
        done = _run(client_venv / "python", "-c", f"import {module}")
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, module
    done = _run(client_venv / "python", "-c", "from clients import AsyncClient, Client")
    assert done.returncode == 0, done.stderr


def test_the_torch_free_half_imports_without_torch(client_venv: Path) -> None:
    """Every module of golf.spec imports in the client install, where torch is absent."""
    modules = sorted(
        f"golf.spec.{p.stem}" for p in (ROOT / "golf" / "spec").glob("*.py") if p.stem != "__init__"
    )
    assert "golf.spec.params" in modules and "golf.spec.registry" in modules
    script = "import importlib, sys\n"
    script += f"for m in {modules!r}: importlib.import_module(m)\n"
    script += "assert 'torch' not in sys.modules\n"
    script += "from golf.spec.registry import protocol_names\n"
    script += "assert 'sliding' in protocol_names()\n"
    done = _run(client_venv / "python", "-c", script)
    assert done.returncode == 0, done.stderr


def test_golf_submit_help_shows_the_generated_options(client_venv: Path) -> None:
    done = _run(client_venv / "golf", "--help")
    assert done.returncode == 0 and done.stderr == ""  # no warnings about missing layers
    done = _run(client_venv / "golf", "submit", "--help")
    assert done.returncode == 0 and done.stderr == ""
    for option in ("--seq-len", "--stride", "--plan", "--reference", "--batch-invariant"):
        assert option in done.stdout
    assert "[1..65536]" in done.stdout and "slot-causal" in done.stdout


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["eval", "x.golf", "--data", "d", "--protocol", "slot"], "eval"),
        (["inspect", "x.golf"], "eval"),
        (["train", "--data", "d", "--out", "x.golf", "--preset", "tiny"], "train"),
        (["serve"], "service"),
    ],
)
def test_commands_of_missing_layers_name_their_extra(
    client_venv: Path, argv: list[str], extra: str
) -> None:
    done = _run(client_venv / "golf", *argv)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: golf {argv[0]} needs ")
    assert line.endswith(f"is not installed: pip install 'golf-eval[{extra}]'")


class Stub(BaseHTTPRequestHandler):
    """Just enough of the service for `golf submit`: lists one dataset and no jobs, records
    each job."""

    jobs: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/v1/jobs":  # submit looks for an identical job first
            self._reply({"jobs": []})
            return
        assert self.path == "/v1/datasets", self.path
        self._reply({"datasets": [{"name": "demo"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Stub.jobs.append({"path": self.path, "auth": self.headers["Authorization"], **body})
        self._reply({"id": "j_stub", "state": "queued"})

    def _reply(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.jobs.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_golf_submit_talks_to_a_server(client_venv: Path, stub: str) -> None:
    done = _run(
        client_venv / "golf", "submit", ARTIFACT_ID, "--dataset", "demo", "--protocol", "slot",
        "--plan", "legacy", "--reference", "--seq-len", "64", "--server", stub,
        "--api-key", "k",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "j_stub\n"
    (job,) = Stub.jobs
    assert job == {
        "path": "/v1/jobs",
        "auth": "Bearer k",
        "artifact": ARTIFACT_ID,
        "dataset": "demo",
        "protocols": ["slot"],
        "params": {"seq_len": 64, "reference": True, "plan": "legacy"},
        "priority": 0,
    }
