"""golf.record.logs: score, size, time lines, the dump, seeds; unknown kinds kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from record_support import log_text

from golf.record import RecordError
from golf.record.logs import find_logs, parse_log


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_newer_log_shape(tmp_path: Path) -> None:
    path = _write(tmp_path, "train_seed42.log", log_text(42, 1.08, 2.79, 15_900_000, 50_000))
    run = parse_log(tmp_path, path)
    assert run.seed == 42
    assert run.headline is not None
    assert (run.headline.kind, run.headline.val_bpb, run.headline.val_loss) == (
        "quantized_ttt_phased", 1.08, 2.79)  # fmt: skip
    assert run.headline.line == 16
    assert [s.kind for s in run.scores] == [
        "pre-quantization post-ema", "quantized", "quantized_ttt_phased"]  # fmt: skip
    assert run.artifact.bytes == 15_900_000 and run.artifact.method == "quantized+brotli"
    assert run.code.bytes == 50_000 and run.total.bytes == 15_950_000
    assert run.size("model_raw").bytes == 135426937
    assert run.train_time_ms == 588000 and run.train_time_line == 8
    assert run.eval_s == 300.0 and run.total_eval_line == 17
    assert run.hparams == {"seed": "42", "train_seq_len": "2048", "vocab_size": "8192"}
    assert run.unparsed == []


def test_older_log_shape_with_echoed_code(tmp_path: Path) -> None:
    text = (
        'import os\n    log0(f"final_int8_zlib_roundtrip val_loss:{q:.4f} val_bpb:{b:.4f}")\n'
        "seed:1337\n"
        "step:100/20000 val_loss:2.1 val_bpb:1.25 train_time:59000ms step_avg:590ms\n"
        "step:1000/20000 train_loss:2.0 train_time:600038ms step_avg:60ms\n"
        "Serialized model: 67224983 bytes\nCode size: 47642 bytes\n"
        "Total submission size: 67272625 bytes\n"
        "Serialized model int8+zlib: 15815847 bytes (payload:17178912 payload_ratio:3.91x)\n"
        "Total submission size int8+zlib: 15863489 bytes\n"
        "final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2244 eval_time:1401ms\n"
        "final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22436570\n"
    )
    run = parse_log(tmp_path, _write(tmp_path, "train.log", text))
    assert run.seed == 1337
    assert run.headline.kind == "final_int8_zlib_roundtrip_exact"
    assert run.headline.val_bpb == 1.2243657
    assert run.artifact.bytes == 15815847 and run.total.bytes == 15863489
    assert run.train_time_ms == 600038
    assert run.unparsed == []


def test_unknown_result_kinds_are_listed_not_dropped(tmp_path: Path) -> None:
    text = (
        "final_magic_cache val_loss:1.9000 val_bpb:0.9000 eval_time:1000ms\n"
        "summary val_bpb:          1.12278022\n"
        "sliding_eval [ 50%] 10/20 windows running_bpb=1.1\n"
    )
    run = parse_log(tmp_path, _write(tmp_path, "train_seed1.log", text))
    assert run.scores == []
    assert run.unparsed == [
        (1, "final_magic_cache val_loss:1.9000 val_bpb:0.9000 eval_time:1000ms"),
        (2, "summary val_bpb:          1.12278022"),
    ]


def test_timestamp_prefixes_and_pair_dumps(tmp_path: Path) -> None:
    text = (
        "a=1 b=2 c=x d=4.0 seed=7 vocab_size=8192\n"
        "1776142719.307 quantized_ttt_lora val_loss:2.77 val_bpb:1.07 eval_time:338190ms\n"
    )
    run = parse_log(tmp_path, _write(tmp_path, "logs/train0.txt", text))
    assert run.seed == 7  # "train0" does not name a seed; the dump does
    assert run.hparams["vocab_size"] == "8192"
    assert run.headline.kind == "quantized_ttt_lora" and run.eval_s == 338.19


def test_find_logs(tmp_path: Path) -> None:
    for name in ("train_seed1.log", "train.txt", "logs/train0.txt", "ttt/seed_0.log",
                 "requirements.txt", "README.md", "a/b/c/deep.log"):  # fmt: skip
        _write(tmp_path, name, "x\n")
    names = [str(p.relative_to(tmp_path)) for p in find_logs(tmp_path)]
    assert names == ["logs/train0.txt", "train.txt", "train_seed1.log", "ttt/seed_0.log"]


def test_enormous_log_is_refused_at_the_cap(tmp_path: Path) -> None:
    path = _write(tmp_path, "train.log", "step:1/2 train_loss:1 train_time:1ms\n" * 1000)
    with pytest.raises(RecordError, match="larger than the 10,000-byte limit"):
        parse_log(tmp_path, path, limit=10_000)


def test_binary_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_bytes(b"ok\n\x00\x01\x02garbage\n")
    with pytest.raises(RecordError, match=r"binary, not text \(NUL bytes, line 2\)"):
        parse_log(tmp_path, path)


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = _write(tmp_path, "secret.txt", "x\n")
    folder = tmp_path / "rec"
    folder.mkdir()
    os.symlink(outside, folder / "train.log")
    with pytest.raises(RecordError, match="symbolic link"):
        parse_log(folder, folder / "train.log")


def test_long_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = _write(tmp_path, "train.log", "x" * 200_000 + "\nquantized val_loss:2 val_bpb:1\n")
    run = parse_log(tmp_path, path)
    assert run.long_lines == 1 and run.headline.val_bpb == 1.0


def test_exact_headline_takes_its_twins_eval_time(tmp_path: Path) -> None:
    text = (
        "legal_ttt val_loss:1.8898 val_bpb:1.1192 eval_time:409562ms\n"
        "legal_ttt_exact val_loss:1.88979844 val_bpb:1.11922988\n"
    )
    run = parse_log(tmp_path, _write(tmp_path, "train_seed1.log", text))
    assert run.headline.kind == "legal_ttt_exact" and run.eval_s == 409.562


def test_a_folder_with_too_many_files_is_refused(tmp_path: Path) -> None:
    sub = tmp_path / "junk"
    sub.mkdir()
    for i in range(10_001):
        (sub / f"{i}").touch()
    with pytest.raises(RecordError, match="more than 10,000 files"):
        find_logs(tmp_path)
