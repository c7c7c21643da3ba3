"""Shared fixtures: a real tokenizer and real shards, built offline once per session."""

from pathlib import Path

import pytest
from rich.console import Console

from golf.demo import build_demo

SMALL_DEMO = {"max_chars": 500_000, "val_chars": 80_000, "shard_tokens": 60_000}
"""Knobs of the session's demo dataset: about 30k val and 170k train tokens in 3 shards,
1024-piece tokenizer, built in well under a second."""


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a small demo dataset: tokenizer.model, val/train shards, manifest.json."""
    path = tmp_path_factory.mktemp("demo_data")
    build_demo(path, console=Console(quiet=True), **SMALL_DEMO)
    return path
