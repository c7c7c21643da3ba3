"""`golf review` on malicious folders: every bad file is a one-line finding, no crash,
nothing executed, nothing read outside the folder."""

from __future__ import annotations

import base64
import lzma
import os
from pathlib import Path

from record_support import make_record

from golf.review import review_folder
from golf.review.render import render_markdown


def problems(folder: Path) -> list[str]:
    r = review_folder(folder)
    render_markdown(r)  # renders too
    return [f.message for f in r.findings if f.code in ("files.unreadable", "legality.unparsed")]


def test_shim_bomb(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r")
    bomb = lzma.compress(b"#" * 60_000_000, format=lzma.FORMAT_RAW,
                         filters=[{"id": lzma.FILTER_LZMA2}])  # fmt: skip
    text = base64.b85encode(bomb).decode()
    (folder / "train_gpt.py").write_text(
        "import lzma as L,base64 as B\n"
        f'exec(L.decompress(B.b85decode("{text}"),format=L.FORMAT_RAW,'
        'filters=[{"id":L.FILTER_LZMA2}]))\n'
    )
    assert problems(folder) == [
        "train_gpt.py: its payload decompresses past the 4,000,000-byte limit"
    ]


def test_deeply_nested_and_huge_source(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "a")
    (folder / "train_gpt.py").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert problems(folder) == [
        "legality not checked: train_gpt.py: brackets nest 5000 deep (limit 100)"
    ]
    folder = make_record(tmp_path / "b")
    (folder / "train_gpt.py").write_text("x = 1\n" * 400_000)
    assert problems(folder) == ["train_gpt.py: larger than the 2,000,000-byte limit"]
    folder = make_record(tmp_path / "c")
    (folder / "train_gpt.py").write_text("x = " + "-" * 50_000 + "1\n")
    assert problems(folder)[0].startswith("legality not checked: train_gpt.py: ")


def test_enormous_log(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r")
    with open(folder / "train_seed42.log", "r+b") as f:
        f.seek(70_000_000)
        f.write(b"x\n")  # sparse: 70 MB without writing them
    assert problems(folder) == ["train_seed42.log: larger than the 64,000,000-byte limit"]


def test_binary_junk(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r")
    (folder / "submission.json").write_bytes(os.urandom(4096).replace(b"\x00", b"\x01") + b"\x00")
    (folder / "train_seed42.log").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert sorted(problems(folder)) == [
        "submission.json: is binary, not text (NUL bytes)",
        "train_seed42.log: is binary, not text (NUL bytes, line 3)",
    ]


def test_symlinks_out_of_the_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("val_loss:0.1 val_bpb:0.1\n")
    folder = make_record(tmp_path / "r")
    (folder / "train_seed42.log").unlink()
    os.symlink(secret, folder / "train_seed42.log")
    (folder / "train_gpt.py").unlink()
    os.symlink("/etc/passwd", folder / "train_gpt.py")
    assert sorted(problems(folder)) == [
        "train_gpt.py: is a symbolic link (refused: it may leave the folder)",
        "train_seed42.log: is a symbolic link (refused: it may leave the folder)",
    ]


def test_code_is_never_executed(tmp_path: Path) -> None:
    folder = make_record(tmp_path / "r")
    marker = tmp_path / "ran"
    (folder / "train_gpt.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        "class Hyperparameters:\n    x = __import__('os').system('touch pwned')\n"
    )
    (folder / "helper.py").write_text(f"open({str(marker)!r}, 'w')\n")
    review_folder(folder)
    assert not marker.exists() and not (folder / "pwned").exists()
