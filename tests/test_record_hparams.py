"""golf.record.hparams: code defaults by AST, the log dump and overrides on top."""

from __future__ import annotations

from pathlib import Path

import pytest
from record_support import HPARAMS_CODE, make_record

from golf.record import RecordError, read_record
from golf.record.hparams import code_defaults, convert, parse_override, resolve
from golf.record.parse import parse_python


@pytest.fixture()
def defaults():  # type: ignore[no-untyped-def]
    return code_defaults(parse_python(HPARAMS_CODE, "train_gpt.py"))


def test_env_defaults_casts_arithmetic_and_strings(defaults) -> None:  # type: ignore[no-untyped-def]
    v = defaults.values
    assert v["seed"] == 1337 and v["train_seq_len"] == 2048 and v["eval_seq_len"] == 2048
    assert v["head_dim"] == 64 and v["mlp_mult"] == 3.0 and isinstance(v["mlp_mult"], float)
    assert v["tie_embeddings"] is True and v["ttt_enabled"] is False
    assert v["ve_layers"] == [9, 10]
    assert v["compressor"] == "brotli"
    assert v["train_files"] == "./data/datasets/fineweb10B_sp1024/fineweb_train_*.bin"
    assert v["ckpt"] == "final_model_1024.pt"
    assert v["grad_clip"] == 0.3  # `_A or 0.3` with the module alias _A = None
    assert v["distributed"] is False  # nothing is set in the environment
    assert "method" not in v
    assert defaults.env["train_seq_len"] == "TRAIN_SEQ_LEN"
    assert defaults.lines["seed"] == 6


def test_unresolved_keys_say_why(defaults) -> None:  # type: ignore[no-untyped-def]
    assert defaults.unresolved == {
        "run_id": "calls uuid.uuid4(…)",
        "secret": "requires the environment variable SECRET_KEY (no default)",
    }
    with pytest.raises(RecordError, match=r"run_id: calls uuid.uuid4.*nope: not defined"):
        defaults.require(["seed", "run_id", "nope"])
    assert defaults.require(["seed"]) == {"seed": 1337}


def test_dependent_field_is_unresolved_with_its_cause() -> None:
    code = "import os\nclass Hyperparameters:\n    a = os.environ['A']\n    b = a * 2\n"
    h = code_defaults(parse_python(code, "t.py"))
    assert h.unresolved["b"] == "depends on a (requires the environment variable A (no default))"


def test_helper_functions_and_conditional_fields_are_interpreted() -> None:
    code = (
        "import os\n"
        "def _e(k, d, t=str):\n"
        "    v = os.environ.get(k, str(d))\n"
        "    if t == bool: return bool(int(v))\n"
        "    return t(v)\n"
        "class Hyperparameters:\n"
        "    caseops = _e('CASEOPS', 0, bool)\n"
        "    vocab = _e('VOCAB', 8192, int)\n"
        "    if caseops:\n"
        "        path = 'caseops'\n"
        "    else:\n"
        "        path = f'sp{vocab}'\n"
    )
    h = code_defaults(parse_python(code, "t.py"))
    assert h.values == {"caseops": False, "vocab": 8192, "path": "sp8192"}


def test_hostile_expressions_stay_unresolved() -> None:
    code = (
        "class Hyperparameters:\n"
        "    a = 'x' * 10**9\n"
        "    b = 2 ** 10**9\n"
        "    c = __import__('os').system('echo hi')\n"
        "    d = int('nope')\n"
    )
    h = code_defaults(parse_python(code, "t.py"))
    assert h.values == {}
    assert h.unresolved["a"] == "value too large"
    assert h.unresolved["b"] == "exponent too large"
    assert h.unresolved["c"] == "calls an expression(…)"
    assert h.unresolved["d"].startswith("ValueError")


def test_recursive_helper_is_cut() -> None:
    code = "def f(x):\n    return f(x)\nclass Hyperparameters:\n    a = f(1)\n"
    h = code_defaults(parse_python(code, "t.py"))
    assert h.unresolved["a"] == "calls f(…) too deeply"


def test_log_dump_overrides_code_and_set_overrides_both(tmp_path: Path) -> None:
    rec = read_record(make_record(tmp_path / "r"))
    h = rec.hparams()
    assert h.values["vocab_size"] == 8192 and h.origin["vocab_size"] == "log"
    assert h.values["model_dim"] == 512 and h.origin["model_dim"] == "code"
    h = rec.hparams(overrides={"vocab_size": "4096", "run_id": "abc", "secret": "s"})
    assert h.values["vocab_size"] == 4096 and h.origin["vocab_size"] == "override"
    assert h.unresolved == {}
    assert rec.hparams(seed=314).values["seed"] == 314


def test_convert_follows_the_code_type() -> None:
    assert convert("1", True) is True and convert("0", True) is False
    assert convert("2048", 1) == 2048 and convert("3e-4", 1.0) == 3e-4
    assert convert("[9, 10]", None) == [9, 10] and convert("brotli", None) == "brotli"
    with pytest.raises(RecordError, match="not an integer"):
        convert("x", 1)


def test_override_syntax() -> None:
    assert parse_override("TRAIN_SEQ_LEN=1024") == ("TRAIN_SEQ_LEN", "1024")
    assert parse_override("a=b=c") == ("a", "b=c")
    with pytest.raises(RecordError, match="KEY=VALUE"):
        parse_override("novalue")


def test_resolve_without_layers_is_the_code(defaults) -> None:  # type: ignore[no-untyped-def]
    assert resolve(defaults).values == defaults.values


def test_literal_constructor_arguments_are_listed(tmp_path: Path) -> None:
    rec = read_record(make_record(tmp_path / "r"))
    found = [(a.callee, a.keyword, a.value) for a in rec.literal_call_args(["Rotary"])]
    assert found == [("Rotary", "train_seq_len", 1024)]


def test_deep_expressions_are_unresolved_not_a_crash() -> None:
    import sys

    code = "def f(x):\n    return " + "(" * 90 + "x" + "+1)" * 90 + "\n"
    code += "class Hyperparameters:\n    a = f(f(f(f(f(f(f(1)))))))\n    b = 2\n"
    tree = parse_python(code, "t.py")
    assert code_defaults(tree).values == {"a": 1 + 7 * 90, "b": 2}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(__import__("inspect").stack()) + 150)
    try:
        h = code_defaults(tree)
    finally:
        sys.setrecursionlimit(limit)
    assert h.unresolved == {"a": "too deep to evaluate (RecursionError)"}
    assert h.values == {"b": 2}
