"""The `golf` command. Core commands live here; other layers plug in through the
`golf.commands` entry-point group so this module never imports them.

stdout carries results (tables, or JSON with `--json`); progress and errors go to
stderr. A user mistake is one line `error: …` and exit code 2, never a traceback
(golf/spec/console.py, shared with the plugins). Each command imports the engine (torch)
when it runs, so `golf --help` and the client commands start without it, and in an
install without the engine a command says which extra to install.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from golf.spec.cli_params import RecordOverrides, eval_options, protocol_help
from golf.spec.console import EXTRA_OF, err, out, print_json, user_errors
from golf.spec.errors import ConfigError
from golf.spec.params import EvalParams

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="golf-eval: score Parameter Golf artifacts exactly.",
)
data_app = typer.Typer(no_args_is_help=True, help="Build datasets.")
artifact_app = typer.Typer(no_args_is_help=True, help="Make artifacts.")
audit_app = typer.Typer(no_args_is_help=True, help="Check protocols for legality.")
app.add_typer(data_app, name="data")
app.add_typer(artifact_app, name="artifact")
app.add_typer(audit_app, name="audit")


def _flags_show_no_type() -> None:
    """typer shows a type after every option, flags too (`--wait <bool>`, even `--help
    <bool>`), which reads as if they took a value: a flag of any command shows none."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_show_no_type", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_bool_flag else shown(self, ctx)

    display_type_rich.flags_show_no_type = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_type()

# ------------------------------------------------------------------ shared options

ArtifactArg = Annotated[Path, typer.Argument(help="A .golf artifact.", show_default=False)]
DataOpt = Annotated[
    Path, typer.Option("--data", help="Folder with *_val_*.bin shards (and tokenizer.model).")
]
TokenizerOpt = Annotated[
    Path | None,
    typer.Option(help="SentencePiece model, if not DATA/tokenizer.model or the PG layout's."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
FormatOpt = Annotated[
    str,
    typer.Option("--format", "-f", help="table, json (the reports) or md (a table for a PR)."),
]
DeviceOpt = Annotated[str, typer.Option(help="torch device; auto = cuda when available.")]
CodeOpt = Annotated[
    Path | None,
    typer.Option(
        "--code",
        help="The submission's code file (train_gpt.py as submitted): its bytes count with "
        "the artifact's against the 16,000,000-byte cap.",
        show_default=False,
    ),
]

AUDIT_EXCLUDES = frozenset({"max_windows", "plan"})
"""EvalParams fields `golf audit causality` does not offer: `--samples` picks the windows
(so no max_windows), and a window's causality does not depend on which targets the plan
scores twice (so no legacy plan); both keep their defaults."""


# ------------------------------------------------------------------ commands


@data_app.command("demo")
@user_errors(extra="demo")
def data_demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the dataset to.")],
    max_chars: Annotated[
        int | None, typer.Option(help="Read at most this much text (smaller, faster).")
    ] = None,
    vocab: Annotated[
        int, typer.Option(help="Tokenizer size: 1024 (sp1024), 4096, 8192, ...")
    ] = 1024,
    byte_sidecar: Annotated[
        bool,
        typer.Option(help="Also write CaseOps-style demo_val_bytes_*.bin byte sidecars."),
    ] = False,
) -> None:
    """Build the offline demo dataset: a SentencePiece tokenizer and val/train shards."""
    from golf.data.demo import build_demo

    kwargs: dict[str, Any] = {
        "max_chars": max_chars,
        "vocab_size": vocab,
        "byte_sidecar": byte_sidecar,
    }
    if max_chars is not None:
        kwargs |= {"val_chars": max_chars // 5, "shard_tokens": max(1, max_chars // 4)}
    summary = build_demo(out_dir, console=err, **kwargs)
    out.print(
        f"{summary['path']}: {summary['val_tokens']:,} val and {summary['train_tokens']:,} "
        f"train tokens, dataset {summary['sha256']}"
    )


@artifact_app.command("random")
@user_errors
def artifact_random(
    data: DataOpt,
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the .golf file.")],
    preset: Annotated[str, typer.Option(help="Model preset: tiny or seed.")] = "tiny",
    tokenizer: TokenizerOpt = None,
    seed: Annotated[int, typer.Option(help="torch seed of the initialisation.")] = 0,
) -> None:
    """A quantized random-init model for DATA's tokenizer (tests and the first demo)."""
    from golf.data.shards import Dataset
    from golf.formats.artifact import random_artifact
    from golf.spec.config import preset as model_preset

    dataset = Dataset.open(data, tokenizer)
    config = model_preset(preset).replace(vocab_size=dataset.vocab_size)
    n_bytes = random_artifact(
        config, dataset.tokenizer_sha256, dataset.vocab_size, out_path, seed=seed
    )
    out.print(f"{out_path}: {n_bytes:,} bytes, preset {preset}, seed {seed}")


@app.command("inspect")
@user_errors
def inspect(artifact: ArtifactArg, as_json: JsonOpt = False, code: CodeOpt = None) -> None:
    """Validate an artifact and show its config, size and budget verdict."""
    from golf.formats.artifact import read_artifact
    from golf.spec.records import code_file, size_block

    summary = read_artifact(artifact).summary().model_dump(mode="json")
    declared = code_file(code)[0] if code is not None else summary["code_bytes"] or None
    size = size_block(summary["artifact_bytes"], declared)
    summary |= {
        "code_bytes": size["code_bytes"],
        "total_bytes": size["total_bytes"],
        "verdict": size["verdict"],
        "headroom_bytes": summary["budget_bytes"] - size["total_bytes"],
    }
    if as_json:
        print_json(summary | {"code_declared": size["code_declared"]})
        return
    cfg = summary["config"]
    table = Table(title=str(artifact), show_header=False, title_justify="left")
    rows = {
        "sha256": summary["sha256"],
        "model": f"{cfg['num_layers']}L d{cfg['model_dim']} {cfg['num_heads']}/"
        f"{cfg['num_kv_heads']} heads, MLP×{cfg['mlp_mult']:g}, vocab {cfg['vocab_size']}",
        "tensors": f"{summary['tensors']} ({summary['parameters']:,} parameters)",
        "schemes": ", ".join(f"{k} {n}" for k, n in summary["schemes"].items()),
        "bytes": f"{summary['artifact_bytes']:,} artifact + {summary['code_bytes']:,} code"
        f" = {summary['total_bytes']:,} of {summary['budget_bytes']:,}"
        + ("" if size["code_declared"] else " (code size not declared: pass --code FILE)"),
        "verdict": f"{summary['verdict']} ({summary['headroom_bytes']:,} bytes headroom)",
        "tokenizer": summary["tokenizer_sha256"],
        "provenance": provenance_line(summary["provenance"]),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    out.print(table)


def provenance_line(provenance: dict[str, Any]) -> str:
    """Who made the weights and how, in one line; long notes are left to `--json`."""
    ttt = provenance["ttt_data_source"]
    gptq = provenance["gptq_calibration_source"]
    parts = [
        provenance["trainer_version"],
        "seeds " + (", ".join(map(str, provenance["seeds"])) or "none"),
        f"TTT on {ttt} × {provenance['ttt_epochs']}" if ttt else "no TTT",
        f"GPTQ calibrated on {gptq}" if gptq else "round-to-nearest",
    ]
    for key, value in provenance["notes"].items():
        parts.append(f"{key}: {value}" if len(value) <= 40 else f"{key}: (see --json)")
    return " · ".join(parts)


@app.command("import-pg")
@user_errors
def import_pg(
    ptz: Annotated[Path, typer.Argument(help="Reference lzma(torch.save) artifact (.ptz).")],
    hparams: Annotated[
        Path, typer.Option(help="JSON of the reference Hyperparameters, lower-case names.")
    ],
    tokenizer: Annotated[Path, typer.Option(help="The tokenizer.model it was trained with.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the .golf file.")],
    code_bytes: Annotated[int, typer.Option(help="Bytes of code counted in the budget.")] = 0,
) -> None:
    """Rewrite a reference .ptz artifact as .golf (read with weights_only=True)."""
    from golf.formats.pg import import_reference

    try:
        doc = json.loads(hparams.read_text("utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {hparams}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{hparams} is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{hparams} must hold a JSON object of hyperparameters")
    artifact = import_reference(ptz, doc, tokenizer, out_path, code_bytes=code_bytes)
    summary = artifact.summary()
    if defaulted := summary.provenance["notes"].get("hparams_defaulted"):
        err.print(f"note: --hparams left {defaulted}: golf's defaults kept", markup=False)
    out.print(
        f"{out_path}: {summary.tensors} tensors, {summary.total_bytes:,} bytes "
        f"({summary.verdict}), sha256 {artifact.sha256}"
    )


@app.command("import")
@user_errors
def import_record_cmd(
    record: Annotated[Path, typer.Argument(help="A record folder (train_gpt.py, logs, ...).")],
    artifact: Annotated[Path, typer.Option(help="The record's artifact (final_model*.ptz).")],
    tokenizer: Annotated[Path, typer.Option(help="The tokenizer.model it was trained with.")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the .golf file.")],
    set_: RecordOverrides = None,
) -> None:
    """Import a record's artifact: hyperparameters from its code (AST) and log, format
    detected, family from its code; never runs the record's code."""
    from golf.formats.board import describe, import_record
    from golf.record import parse_override

    overrides = dict(parse_override(item) for item in set_ or [])
    imported = import_record(record, artifact, out_path, tokenizer=tokenizer, overrides=overrides)
    summary = imported.artifact.summary()
    err.print(describe(imported))
    out.print(
        f"{out_path}: {imported.format}, {imported.facts.arch}, {summary.tensors} tensors, "
        f"{summary.total_bytes:,} bytes ({summary.verdict}), sha256 {imported.artifact.sha256}"
    )


@app.command("eval")
@user_errors
@eval_options()
def eval_cmd(
    artifact: ArtifactArg,
    data: DataOpt,
    protocol: Annotated[list[str], typer.Option(help=protocol_help(repeatable=True))],
    params: EvalParams,
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
    code: CodeOpt = None,
    fmt: FormatOpt = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    save: Annotated[
        Path | None,
        typer.Option(
            help="Also write DIR/report.json (the --json document) and DIR/windows.jsonl "
            "(per-window records), for golf compare.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Score an artifact under each protocol; a table, the reports as JSON, or markdown."""
    from golf.engine.engine import pick_device
    from golf.engine.runner import EvalInputs, run_protocol
    from golf.spec.jobplan import plan_protocol
    from golf.spec.records import code_file
    from golf.spec.registry import get_protocol

    fmt = _eval_format(fmt, as_json)
    protocols = [get_protocol(name) for name in protocol]  # fail before loading anything
    code_bytes = code_file(code)[0] if code is not None else None
    inputs = EvalInputs.load(str(artifact), str(data), tokenizer, pick_device(device))
    n_tokens = inputs.dataset.val_tokens(params.seq_len).size
    reports = []
    windows: dict[str, list[Any]] = {}  # per protocol, its records as batches end
    with Progress(
        TextColumn("{task.description:>12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches"),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        for proto in protocols:
            if proto.sequential:  # a chain: one step per chunk / document batch
                val = inputs.dataset.val_tokens(params.seq_len)
                total = proto.steps(n_tokens, val, proto.resolve(params))  # type: ignore[attr-defined]
            else:
                total = plan_protocol(proto.name, n_tokens, params).batches
            task = bar.add_task(proto.name, total=total)
            records: list[Any] = []
            windows[proto.name] = records

            def advance(k: int, batch: list[Any], t: Any = task, into: list = records) -> None:
                into.extend(batch)
                bar.advance(t)

            report = run_protocol(inputs, proto.name, params, progress=advance)
            if proto.sequential:
                from golf.audit.causality import stream_audit

                val = inputs.dataset.val_tokens(params.seq_len)
                audit = stream_audit(inputs.model, val, proto.name, report.params)
                report = report.model_copy(update={"audit": audit})
            reports.append(report)
    doc = eval_doc(reports, inputs, code_bytes)
    if save is not None:
        save_eval(save, doc, windows)
    if fmt == "json":
        print_json(doc)
        return
    if fmt == "md":
        from golf.spec.tables import report_markdown

        typer.echo(report_markdown(doc, inputs.dataset.name), nl=False)
        return
    table = Table(
        title=f"{artifact.name} ({inputs.artifact.sha256[:12]}) on {inputs.dataset.name} "
        f"({inputs.dataset.sha256[:12]}), L={params.seq_len}",
        title_justify="left",
    )
    for name in (
        "protocol",
        "stride",
        "val_bpb",
        "95% CI",
        "Δ bpb",
        "val_loss",
        "windows",
        "tokens",
    ):
        table.add_column(name, justify="left" if name == "protocol" else "right")
    table.add_column("wall s", justify="right")
    from golf.spec.tables import CI_NOTE, ci_words, hardware_line, scored_alike

    comparable, notes = scored_alike(doc)
    where = hardware_line(doc)
    table.caption, table.caption_justify = "\n".join([*notes, where, CI_NOTE]), "left"
    if notes:
        table.caption_style = "bold yellow"
    first = reports[0].val_bpb
    for r in reports:
        table.add_row(
            r.protocol,
            str(r.params.stride),
            f"{r.val_bpb:.6f}",
            ci_words(r.model_dump(mode="json")),
            f"{r.val_bpb - first:+.6f}" if comparable else "—",
            f"{r.val_loss:.6f}",
            f"{r.windows:,}",
            f"{r.tokens:,}",
            f"{r.elapsed_s:.2f}",
        )
    out.print(table)


EVAL_FORMATS = ("table", "json", "md")


def _eval_format(fmt: str, as_json: bool) -> str:
    fmt = fmt.lower()
    if fmt not in EVAL_FORMATS:
        raise ConfigError(f"unknown --format {fmt}; use one of {', '.join(EVAL_FORMATS)}")
    if as_json and fmt not in ("table", "json"):
        raise ConfigError(f"--json and --format {fmt} disagree; pass one of them")
    return "json" if as_json else fmt


def eval_doc(reports: list[Any], inputs: Any, code_bytes: int | None = None) -> dict[str, Any]:
    """What `golf eval --json` prints: the reports, and the artifact (bytes, verdict, flags)
    and dataset they were measured on, in the shape of a job report's."""
    from golf.engine.report import digest
    from golf.spec.records import protocol_flags, size_block, time_flags

    summary = inputs.artifact.summary()
    own = summary.flags()
    dumped = [r.model_dump(mode="json") for r in reports]
    code = code_bytes if code_bytes is not None else summary.code_bytes or None
    return {
        "reports": dumped,
        "artifact": {
            "id": summary.sha256,
            **size_block(summary.artifact_bytes, code),
            "flags": [f.model_dump() for f in own],
        },
        "flags": [
            f.model_dump()
            for f in own + protocol_flags(r.protocol for r in reports) + time_flags(dumped)
        ],
        "dataset": {"name": inputs.dataset.name, "sha256": inputs.dataset.sha256},
        "environment": local_environment(reports),
        "digest": digest(
            summary.sha256,
            inputs.dataset.sha256,
            {r.protocol: r.params.model_dump(mode="json") for r in reports},
            {r.protocol: r.engine.precision for r in reports},
        ),
    }


def local_environment(reports: list[Any]) -> dict[str, Any]:
    """The `environment` of a job report, for this process: device, torch, version."""
    from golf import __version__

    engine = reports[0].engine
    return {
        "device": engine.device,
        "device_name": engine.device_name,
        "torch": engine.torch,
        "workers": 1,
        "golf_eval": __version__,
    }


def save_eval(folder: Path, doc: dict[str, Any], windows: dict[str, list[Any]]) -> None:
    """`golf eval --save`: FOLDER/report.json (the --json document) and FOLDER/windows.jsonl,
    one record a line `{"protocol", "window", "nll_sum", "tokens", "bytes"}` (the lines of
    the service's `GET /v1/jobs/{id}/windows.ndjson`), by protocol then window."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
        with (folder / "windows.jsonl").open("w", encoding="utf-8") as f:
            for protocol, records in windows.items():
                for r in sorted(records, key=lambda r: r.window):
                    line = {"protocol": protocol, "window": r.window, "nll_sum": r.nll_sum}
                    f.write(json.dumps(line | {"tokens": r.tokens, "bytes": r.bytes}) + "\n")
    except OSError as e:
        raise ConfigError(f"cannot save to {folder}: {e.strerror or e}") from None
    err.print(f"saved {folder}/report.json and windows.jsonl")


@audit_app.command("causality")
@user_errors
@eval_options(exclude=AUDIT_EXCLUDES)
def audit_causality(
    artifact: ArtifactArg,
    data: DataOpt,
    protocol: Annotated[list[str], typer.Option(help=protocol_help(repeatable=True))],
    params: EvalParams,
    samples: Annotated[int, typer.Option(help="Windows sampled for the flip test.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the window and token sampling.")] = 0,
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Flip test of PR #1240: does changing a token move the NLL of earlier targets?

    Each --protocol is audited in turn: one line each, or with --json one object (a list
    of them for several protocols)."""
    from golf.audit.causality import audit
    from golf.engine.engine import pick_device
    from golf.engine.runner import EvalInputs
    from golf.spec.registry import get_protocol

    protos = [get_protocol(name) for name in dict.fromkeys(protocol)]  # fail before loading
    inputs = EvalInputs.load(str(artifact), str(data), tokenizer, pick_device(device))
    results = []
    for proto in protos:
        resolved = proto.resolve(params)
        val = inputs.dataset.val_tokens(resolved.seq_len)
        if proto.sequential:  # a chain: the stream flip audit on a prefix, `samples` flips
            from golf.audit.causality import audit_report

            flips = resolved.model_copy(update={"ttt_audit_flips": samples})
            with err.status(f"auditing {proto.name} with {samples} flips"):
                results.append(audit_report(inputs.model, val, proto, flips))  # type: ignore[arg-type]
            continue
        with err.status(f"auditing {proto.name} on {samples} windows"):
            results.append(audit(inputs.model, val, proto, resolved, windows=samples, seed=seed))
    if as_json:
        print_json(results[0] if len(results) == 1 else results)
        return
    for proto, result in zip(protos, results, strict=True):
        if proto.sequential:
            out.print(
                f"{proto.name} over {result['tokens']:,} tokens, {result['flips']} flips: "
                f"{result['violations']:,} of {result['pairs_tested']:,} earlier scores moved "
                f"→ {result['verdict']}",
                soft_wrap=True,
            )
            continue
        verdict = "causal" if result["violations"] == 0 else "NOT causal"
        out.print(
            f"{result['protocol']} over {result['windows_tested']} windows: earlier scored "
            f"targets moved within the flipped window {_moved(result, 'within_window')}, in "
            f"its batch mates {_moved(result, 'cross_window')} → {verdict}",
            soft_wrap=True,  # one line, to grep in logs
        )


@app.command("review")
@user_errors
def review(
    folder: Annotated[
        Path | None, typer.Argument(help="A record folder.", show_default=False)
    ] = None,
    board: Annotated[
        Path | None,
        typer.Option(help="Review every folder of RECORDS_DIR into one table.", show_default=False),
    ] = None,
    artifact: Annotated[
        Path | None, typer.Option(help="The record's .golf artifact: dynamic checks.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Dataset folder for --artifact.")] = None,
    against: Annotated[
        Path | None, typer.Option(help="Baseline record folder for the significance test.")
    ] = None,
    against_bpb: Annotated[float | None, typer.Option(help="Baseline mean val_bpb.")] = None,
    against_loss: Annotated[
        float | None, typer.Option(help="Baseline mean val_loss (nats).")
    ] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=VALUE hyperparameter override.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
    max_windows: Annotated[
        int | None, typer.Option(help="Re-score only the first N windows (--artifact).")
    ] = None,
    tokenizer: TokenizerOpt = None,
    device: DeviceOpt = "auto",
) -> None:
    """Check a record folder against the rules: size, claims, time, significance, legality."""
    from golf.review.command import review_text

    text = review_text(folder, board, fmt, artifact, data, tokenizer, device, against,
                       against_bpb, against_loss, sets, max_windows)  # fmt: skip
    typer.echo(text, nl=False)


def _moved(result: dict[str, Any], kind: str) -> str:
    pairs = result[f"{kind}_pairs"]
    if not pairs:
        return "n/a (nothing to test)"
    return f"{result[f'{kind}_violations']:,} of {pairs:,} (rate {result[f'{kind}_rate']:.4f})"


def _load_plugins() -> None:
    """Add the commands of the layers above; one that cannot import leaves the rest usable.

    A layer whose packages are not installed (an extra left out) is skipped quietly and
    named at the end of `golf --help`; any other import failure is a one-line warning.
    """
    missing = []
    for ep in entry_points(group="golf.commands"):
        try:
            register = ep.load()
        except ImportError as e:
            top = (getattr(e, "name", None) or "").split(".")[0]
            if isinstance(e, ModuleNotFoundError) and top in EXTRA_OF:
                missing.append(escape(f"{ep.name} (pip install 'golf-eval[{EXTRA_OF[top]}]')"))
            else:
                err.print(
                    f"warning: `golf` commands of {ep.value} are unavailable: {e}", markup=False
                )
            continue
        register(app)
    if missing:
        app.info.epilog = "Not installed: " + ", ".join(missing) + "."


def main() -> None:
    _load_plugins()
    app()


if __name__ == "__main__":  # python -m golf.cli, as the `golf` script
    main()
