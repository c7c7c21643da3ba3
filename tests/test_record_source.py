"""golf.record.source and .parse: plain, shim (raw LZMA2 and xz) and stub scripts; the
3.12 f-string fallback; limits."""

from __future__ import annotations

import ast
import base64
import lzma
from pathlib import Path

import pytest
from record_support import HPARAMS_CODE, shim

from golf.record import RecordError, read_record
from golf.record.parse import FSTRING, MAX_BRACKET_DEPTH, parse_python
from golf.record.source import decode_payload, read_source, stub_target


def test_plain_script_counts_the_file_as_submitted(tmp_path: Path) -> None:
    (tmp_path / "train_gpt.py").write_text("x = 'é'\n")
    src = read_source(tmp_path)
    assert (src.kind, src.submitted_bytes, src.code_bytes) == ("plain", 9, 9)
    assert src.code_name == "train_gpt.py"


@pytest.mark.parametrize("container, name", [("raw", "lzma2-raw"), ("xz", "xz")])
def test_shim_is_decoded_not_run(tmp_path: Path, container: str, name: str) -> None:
    code = "raise SystemExit('executed')\n" + HPARAMS_CODE
    wrapper = shim(code, container)
    (tmp_path / "train_gpt.py").write_text(wrapper)
    src = read_source(tmp_path)
    assert src.kind == "shim" and src.container == name
    assert src.code == code
    assert src.submitted_bytes == len(wrapper.encode()) < src.code_bytes
    assert src.code_name == "train_gpt.py (decoded)"


def test_stub_reports_both_sizes(tmp_path: Path) -> None:
    stub = 'exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())\n'
    (tmp_path / "train_gpt.py").write_text(stub)
    (tmp_path / "train_gpt_decode.py").write_text(HPARAMS_CODE)
    src = read_source(tmp_path)
    assert src.kind == "stub"
    assert src.submitted_bytes == len(stub) == 74
    assert src.target_bytes == len(HPARAMS_CODE.encode())
    assert src.code_name == "train_gpt_decode.py"


def test_stub_may_not_leave_the_folder(tmp_path: Path) -> None:
    (tmp_path / "train_gpt.py").write_text("exec(open('../../etc/passwd').read())\n")
    with pytest.raises(RecordError, match="not another file here"):
        read_source(tmp_path)


def test_stub_target_only_matches_one_liners() -> None:
    assert stub_target("exec(open('a.py').read())") == "a.py"
    assert stub_target("import os\nexec(open('a.py').read())") is None


def test_renamed_script_is_found(tmp_path: Path) -> None:
    (tmp_path / "train_gpt_v5.py").write_text("x = 1\n")
    assert read_source(tmp_path).path.name == "train_gpt_v5.py"


def test_pep701_fstrings_parse_on_311_with_lines_kept() -> None:
    code = (
        'a = 1\nlog(f"  {a}: {", ".join(str(x) for x in [1, 2])}")\nb = f"""x\n{a}\ny"""\nc = 2\n'
    )
    tree = parse_python(code, "t.py")
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == FSTRING
    ]
    assert len(calls) == 2
    assigns = {n.targets[0].id: n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assign)}
    assert assigns == {"a": 1, "b": 3, "c": 6}


def test_bracket_nesting_is_refused_before_parsing() -> None:
    deep = "x = " + "(" * (MAX_BRACKET_DEPTH + 1) + "1" + ")" * (MAX_BRACKET_DEPTH + 1)
    with pytest.raises(RecordError, match="brackets nest"):
        parse_python(deep, "t.py")


def test_long_operator_chains_are_refused_by_depth() -> None:
    with pytest.raises(RecordError, match="nests|does not parse"):
        parse_python("x = " + " + ".join(["1"] * 5000), "t.py")


def test_huge_source_is_refused() -> None:
    with pytest.raises(RecordError, match="limit"):
        parse_python("#" * 4_000_001, "t.py")


def test_syntax_error_is_one_line() -> None:
    with pytest.raises(RecordError, match=r"t.py:1: does not parse"):
        parse_python("def (:\n", "t.py")


def test_shim_bomb_stops_at_the_cap() -> None:
    bomb = lzma.compress(b"a" * 50_000_000, format=lzma.FORMAT_RAW,
                         filters=[{"id": lzma.FILTER_LZMA2}])  # fmt: skip
    assert len(bomb) < 20_000
    with pytest.raises(RecordError, match="past the 4,000,000-byte limit"):
        decode_payload(bomb, "train_gpt.py")


@pytest.mark.parametrize(
    "payload, why",
    [
        (b"\xffnot lzma at all" * 10, "does not decompress"),
        (b"\x00" * 10, "decompresses to nothing"),
        (lzma.compress(b"x = 1\n" * 1000)[:40], "truncated"),
    ],
)
def test_shim_with_garbage_payload_is_one_line(tmp_path: Path, payload: bytes, why: str) -> None:
    junk = base64.b85encode(payload).decode()
    (tmp_path / "train_gpt.py").write_text(
        f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{junk}")))\n'
    )
    with pytest.raises(RecordError, match=why):
        read_source(tmp_path)


def test_read_record_collects_problems_instead_of_failing(tmp_path: Path) -> None:
    (tmp_path / "train_gpt.py").write_bytes(b"\x00\x01binary")
    rec = read_record(tmp_path)
    assert rec.source is None
    assert rec.problems == [
        "train_gpt.py: is binary, not text (NUL bytes)",
        f"{tmp_path.name}: no submission.json",
    ]


def test_a_crash_of_the_312_parser_is_one_line() -> None:
    # one 3.12 f-string gets past ast.parse's tokenizer error into libcst; the chain of
    # unary minuses then overflows libcst's native stack: the child dies, we do not
    code = 'x = f"{", ".join(a)}"\ny = ' + "-" * 200_000 + "1\n"
    with pytest.raises(RecordError, match=r"^t.py: the 3.12 parser crashed \(signal \d+\)$"):
        parse_python(code, "t.py")


def test_a_312_syntax_error_names_the_file_and_line() -> None:
    with pytest.raises(RecordError, match=r"^t.py:2: does not parse"):
        parse_python('x = f"{", ".join(a)}"\ndef (:\n', "t.py")
