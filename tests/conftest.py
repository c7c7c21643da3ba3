"""Shared fixtures: a real tokenizer and real shards, built offline once per session."""

from pathlib import Path

import pytest
import torch
from rich.console import Console

from golf.data.demo import build_demo
from golf.models.gpt import GPT
from golf.spec.config import preset

torch.set_num_threads(1)  # many small ops: threads cost more than they give here

SMALL_DEMO = {"max_chars": 500_000, "val_chars": 80_000, "shard_tokens": 60_000}
"""Knobs of the session's demo dataset: about 30k val and 170k train tokens in 3 shards,
1024-piece tokenizer, built in well under a second."""


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a small demo dataset: tokenizer.model, val/train shards, manifest.json."""
    path = tmp_path_factory.mktemp("demo_data")
    build_demo(path, console=Console(quiet=True), **SMALL_DEMO)
    return path


@pytest.fixture(scope="session")
def model() -> GPT:
    """The tiny config with every weight jittered, so that no block is an identity.

    Shared by the protocol, SLOT and audit tests; none of them may change its weights.
    """
    torch.manual_seed(0)
    gpt = GPT(preset("tiny")).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return gpt.requires_grad_(False)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray for the service tests, started once: 2 CPUs, no dashboard."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
