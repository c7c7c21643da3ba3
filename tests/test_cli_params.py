"""The evaluation options of `golf eval`, `golf audit causality` and `golf submit` are
generated from `EvalParams`: the same names, types, bounds and one-line errors everywhere,
and a new field shows up without touching the commands. Torch-free: no artifact is read.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from pydantic import Field
from typer.testing import CliRunner

import clients.cli
from golf.cli import AUDIT_EXCLUDES, app
from golf.spec.cli_params import bounds, eval_options, option_names
from golf.spec.params import EvalParams
from golf.spec.registry import protocol_names

runner = CliRunner()
COMMON = {"protocol", "data", "tokenizer", "device", "as_json", "help"}
ARTIFACT_ID = "ab" * 32


def _commands() -> dict[str, Any]:
    """The click commands (of the click typer runs on) that the three commands become."""
    group: Any = typer.main.get_command(app)
    client_app = typer.Typer()
    clients.cli.register(client_app)
    client_group: Any = typer.main.get_command(client_app)
    audit = group.commands["audit"]
    return {
        "eval": group.commands["eval"],
        "audit causality": audit.commands["causality"],
        "submit": client_group.commands["submit"],
    }


EXCLUDED = {"eval": frozenset(), "audit causality": AUDIT_EXCLUDES, "submit": frozenset()}
OWN = {
    "eval": COMMON | {"save", "fmt", "code"},
    "audit causality": COMMON | {"samples", "seed"},
    "submit": {
        "dataset",
        "protocol",
        "priority",
        "group",
        "code",
        "wait",
        "rerun",
        "fmt",
        "as_json",
        "server",
        "api_key",
    },
}


@pytest.mark.parametrize("name", list(EXCLUDED))
def test_every_eval_param_is_an_option(name: str) -> None:
    """Whatever fields EvalParams has, each command offers them all (minus its exclusions)."""
    command = _commands()[name]
    fields = set(EvalParams.model_fields) - EXCLUDED[name]
    assert option_names(command) - OWN[name] == fields
    flags = {p.name: p.opts for p in command.params}
    for field in fields:
        assert f"--{field.replace('_', '-')}" in flags[field]


def test_audit_excludes_only_real_fields() -> None:
    assert AUDIT_EXCLUDES < set(EvalParams.model_fields)


class Extended(EvalParams):
    slot_beta: float = Field(0.9, ge=0, lt=1, description="A knob added later.")
    fused: bool = Field(True, description="A flag that is on by default.")


def test_a_new_field_becomes_an_option_and_reaches_the_command() -> None:
    seen: dict[str, Any] = {}

    @eval_options(exclude={"plan"}, model=Extended)
    def command(name: str, params: Extended, verbose: bool = False) -> None:
        seen.update(name=name, params=params, verbose=verbose)

    new = typer.Typer()
    new.command()(command)
    new.command("other")(lambda: None)  # a group, so that the command is named
    args = ["command", "x", "--slot-beta", "0.5", "--no-fused", "--stride", "8"]
    result = runner.invoke(new, args)
    assert result.exit_code == 0, result.output
    params = seen["params"]
    assert isinstance(params, Extended) and seen["name"] == "x" and not seen["verbose"]
    assert (params.slot_beta, params.fused, params.stride) == (0.5, False, 8)
    assert params.model_fields_set == {"slot_beta", "fused", "stride"}
    assert params.plan == "canonical"
    help_text = runner.invoke(new, ["command", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--slot-beta" in help_text and "[0..1)" in help_text and "--fused" in help_text
    assert "--no-fused" in help_text and "--plan" not in help_text


def test_bounds_are_intervals() -> None:
    f = EvalParams.model_fields
    assert bounds(f["seq_len"]) == "[1..65536]"
    assert bounds(f["slot_lr"]) == "(0..100]"
    assert bounds(f["stride"]) == "[≥1]"
    assert bounds(f["plan"]) == ""


def test_eval_help_shows_bounds_flags_choices_and_protocols() -> None:
    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = re.sub(r"\s+", " ", result.stdout)
    assert "Window length L. [1..65536]" in text and "(0..100]" in text
    assert "--reference" in text and "--no-reference" not in text
    assert "--batch-invariant" in text and "canonical|legacy" in text
    assert ", ".join(protocol_names()) in text


def _golf(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


BAD = [
    (["--seq-len", "0"], "evaluation parameter seq_len: "),
    (["--slot-lr", "0"], "evaluation parameter slot_lr: "),
    (["--plan", "sideways"], "evaluation parameter plan: "),
    (["--seq-len", "64", "--stride", "128"], "stride 128 exceeds seq_len 64"),
    (["--slot-lr", "0.01", "--slot-lr-min", "0.1"], "slot_lr_min 0.1 exceeds slot_lr"),
]


@pytest.mark.parametrize(
    ("command", "flags", "words"),
    [
        (command, flags, words)
        for command in ("eval", "audit", "submit")
        for flags, words in BAD
        if not (command == "audit" and flags[0] == "--plan")  # not an audit option
    ],
)
def test_bad_values_are_one_line_before_anything_runs(
    command: str, flags: list[str], words: str
) -> None:
    """Checked before the artifact is read or the server is called (neither exists)."""
    head = {
        "eval": ["eval", "nope.golf", "--data", "nope", "--protocol", "slot"],
        "audit": ["audit", "causality", "nope.golf", "--data", "nope", "--protocol", "slot"],
        "submit": ["submit", ARTIFACT_ID, "--dataset", "d", "--protocol", "slot"],
    }[command]
    if command == "submit":
        client_app = typer.Typer()
        clients.cli.register(client_app)
        result = runner.invoke(client_app, [*head, *flags], env={"GOLF_SERVER": "http://[::1]:9"})
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
    else:
        code, stdout, stderr = _golf(*head, *flags)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: ") and stderr.count("\n") == 1 and words in stderr


class FakeClient:
    """Stands in for the SDK's Client: records what `golf submit` sends."""

    sent: list[dict[str, Any]] = []

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def datasets(self) -> list[dict[str, Any]]:
        return [{"name": "demo"}]

    def jobs(self) -> list[dict[str, Any]]:
        return []  # nothing to reuse

    def submit(
        self,
        artifact: str,
        dataset: str,
        protocols: list[str],
        params: Any,
        prio: int,
        group: str | None = None,
        code: tuple[int, str] | None = None,
    ):
        FakeClient.sent.append(
            {"artifact": artifact, "dataset": dataset, "protocols": protocols, "params": params}
        )
        return {"id": "j_fake", "state": "queued"}


def _submit(monkeypatch: pytest.MonkeyPatch, *flags: str) -> dict[str, Any]:
    monkeypatch.setattr(clients.cli, "Client", FakeClient)
    FakeClient.sent.clear()
    client_app = typer.Typer()
    clients.cli.register(client_app)
    args = ["submit", ARTIFACT_ID, "--dataset", "demo", "--protocol", "slot", *flags]
    result = runner.invoke(client_app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout == "j_fake\n"
    (sent,) = FakeClient.sent
    return sent


def test_submit_sends_only_the_params_given(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _submit(
        monkeypatch, "--plan", "legacy", "--reference", "--seq-len", "64", "--slot-lr", "0.5"
    )
    assert sent["params"] == {"plan": "legacy", "reference": True, "seq_len": 64, "slot_lr": 0.5}
    assert sent["protocols"] == ["slot"] and sent["artifact"] == ARTIFACT_ID
    # Nothing given: the server's defaults, not a copy of the client's.
    assert _submit(monkeypatch)["params"] == {}
    # A value equal to the default is still sent when given.
    assert _submit(monkeypatch, "--seq-len", "2048")["params"] == {"seq_len": 2048}
