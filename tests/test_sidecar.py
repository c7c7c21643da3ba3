"""Tokenizer sizes and CaseOps byte sidecars in dataset folders.

The trap: `*_val_*.bin` also matches `*_val_bytes_*.bin`, whose entries (byte counts, all
small) pass for token ids; a reader that globbed them in would score a doubled val set.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from rich.console import Console

from golf.data.demo import build_demo
from golf.data.shards import Dataset, read_shard, write_shard
from golf.spec.errors import DataError
from tests.conftest import SMALL_DEMO


@pytest.fixture(scope="module")
def caseops(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("caseops")
    build_demo(path, console=Console(quiet=True), byte_sidecar=True, **SMALL_DEMO)
    return path


def test_sidecar_is_never_read_as_tokens(caseops):
    data = Dataset.open(caseops)
    assert [p.name for p in data.val_files] == ["demo_val_000000.bin"]
    assert [p.name for p in data.sidecar_files] == ["demo_val_bytes_000000.bin"]
    tokens = np.asarray(read_shard(caseops / "demo_val_000000.bin"))
    assert np.array_equal(data.val_tokens(), tokens)
    sidecar = np.asarray(read_shard(caseops / "demo_val_bytes_000000.bin"))
    assert int(sidecar.max()) < data.vocab_size  # why the trap would pass a vocab check


def test_byte_source_names_sidecar_or_luts(caseops, demo_data):
    assert Dataset.open(caseops).byte_source == "sidecar"
    assert Dataset.open(demo_data).byte_source == "sentencepiece-luts"


def test_sidecar_bytes_are_the_tokenizers_bytes_with_bos_zero(caseops):
    data = Dataset.open(caseops)
    tokens, sidecar = data.val_tokens(128), data.val_bytes(128)
    assert sidecar.size == tokens.size
    lut = data.byte_lut()
    assert np.array_equal(sidecar[1:], lut.count(tokens[:-1], tokens[1:]))
    assert (sidecar[tokens == 1] == 0).all() and (tokens == 1).sum() > 10


def test_sidecar_of_another_length_is_refused(caseops, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(caseops, bad)
    sidecar = np.array(read_shard(bad / "demo_val_bytes_000000.bin"))  # a copy, not a map
    write_shard(bad / "demo_val_bytes_000000.bin", sidecar[:-1])
    with pytest.raises(DataError, match="demo_val_bytes_000000.bin has .* entries"):
        Dataset.open(bad)


def test_sidecar_without_its_token_shard_is_refused(caseops, tmp_path):
    bad = tmp_path / "lonely"
    shutil.copytree(caseops, bad)
    (bad / "demo_val_bytes_000000.bin").rename(bad / "demo_val_bytes_000001.bin")
    with pytest.raises(DataError, match="no token shard beside it"):
        Dataset.open(bad)


@pytest.mark.parametrize("vocab", [4096, 8192])
def test_demo_builds_larger_vocabularies(vocab, tmp_path):
    build_demo(tmp_path, console=Console(quiet=True), vocab_size=vocab, **SMALL_DEMO)
    data = Dataset.open(tmp_path)
    assert data.vocab_size == vocab
    assert int(data.val_tokens().max()) >= 1024  # the larger pieces are used
