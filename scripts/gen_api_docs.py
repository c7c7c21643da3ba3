"""Write docs/API.md from the service's OpenAPI schema, so that the document cannot drift.

    .venv/bin/python scripts/gen_api_docs.py           # rewrite docs/API.md
    .venv/bin/python scripts/gen_api_docs.py --check   # exit 1 if docs/API.md is stale

The reference part (endpoints, parameters, bodies, responses, schemas) comes from
`create_app(...).openapi()`; building the app starts nothing (Ray, the store and the
scheduler live in its lifespan, which never runs here). The preface below is hand-written:
what OpenAPI does not say (auth, error format, SSE events, example objects).
tests/test_api_docs.py checks that the committed file equals this script's output.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "API.md"

PREFACE = """\
The contract between `service/` and `clients/`. JSON everywhere; the live OpenAPI schema
is served at `/openapi.json` (browsable at `/docs`).

## Authentication

Every request but `GET /healthz` and `GET /metrics` carries `Authorization: Bearer KEY`;
keys map to owners (`golf serve --api-keys FILE`, lines `KEY OWNER [admin]`, `#`
comments). An owner sees its own jobs; an admin sees everyone's. Without `--api-keys`
the server makes a development admin key for owner `dev` and prints it.

## Errors

Status 4xx/5xx with body `{"detail": "<one line>"}`, including validation errors (the
OpenAPI schema's `HTTPValidationError` shape is never sent):

| status | when |
|---|---|
| 401 | missing or unknown key |
| 404 | unknown artifact or job, or another owner's job |
| 409 | artifact and dataset tokenizers differ; report of an unfinished job; cannot cancel |
| 413 | upload over the cap |
| 415 | an upload that is not `multipart/form-data` |
| 422 | bad parameters (one line naming the field) |
| 429 | over the owner's cap of queued plus running jobs |
| 500 | `internal error: …` for a bug (logged; the server keeps serving) |

## Artifacts

`POST /v1/artifacts` takes `multipart/form-data` with one field, `file` (read as a stream,
so the schema below lists no request body). It is streamed to disk, capped, validated by
`golf.formats.artifact.read_artifact` and stored by sha256: the same bytes give the same id, 200
both times.

```json
{"id": "<sha256>", "bytes": 197272, "code_bytes": 0, "total_bytes": 197272,
 "verdict": "fits", "config": {...}, "tokenizer_sha256": "...", "vocab_size": 1024,
 "provenance": {...}, "flags": ["ttt_on_val", "gptq_calibrated_on_val"]}
```

`flags` names contested techniques read from provenance (`ttt_on_val`,
`gptq_calibrated_on_val`); the job report adds `non_causal_protocol:slot` for `slot`.

`POST /v1/artifacts/import` is `golf import RECORD_DIR --artifact F` on the server
(`golf upload-record`, `Client.import_record`). `multipart/form-data` fields: `record`
(the folder's name, letters, digits and `. _ + -`), `dataset` (a served dataset: its
tokenizer is the one the artifact was trained with; 404 if unknown), `file` (repeatable:
the folder's `.py .log .txt .json .md` files by their bare names: `train_gpt.py` and a
decode sibling, logs, `submission.json`, README), `artifact` (the record's artifact as
written, e.g. `final_model.int6.ptz`) and `set` (repeatable `KEY=VALUE`, as `--set`).
The folder is read by the same function as `golf import` (never run), the artifact
converted and stored as an upload's; the answer is the artifact object plus `record`,
`format`, `arch` and `decisions` (one line per decision, as `golf import` prints). Its
provenance notes name the record, `code_file`/`code_sha256` and the original artifact
(`imported_from`, `imported_sha256`). A path, `..`, hidden or unprintable file name, an
unknown field, unparsable code, a shim that decodes past its cap, an unknown
hyperparameter or a damaged artifact is 422; a file type not listed 415; more than 64
files, code over 2,000,000 bytes or a body over the upload cap 413.

## Jobs

`POST /v1/jobs`, answered 201 with the job object (`state` `queued`):

```json
{"artifact": "<sha256>", "dataset": "demo", "protocols": ["sliding", "slot"],
 "params": {"seq_len": 2048, "stride": null, "batch_windows": 32, "slot_steps": 24,
            "slot_lr": 0.012, "slot_lr_min": 0.001, "batch_invariant": false,
            "max_windows": null},
 "priority": 0}
```

`params` holds fields of `golf.protocols.EvalParams` (schema `EvalParams` below), all
optional. Datasets are the folders under `--data-root` (`GET /v1/datasets`).

The job object (`GET /v1/jobs/{job_id}`; `GET /v1/jobs` lists them without `shards`):

```json
{"id": "j_…", "owner": "alice", "state": "running", "artifact": "<sha256>",
 "dataset": "demo", "protocols": ["sliding", "slot"], "params": {...}, "priority": 0,
 "created_at": 1764100000.0, "started_at": 1764100001.0, "finished_at": null,
 "error": null,
 "shards": [{"protocol": "sliding", "shard": 0, "state": "running",
             "windows_done": 64, "windows_total": 128, "tokens": 6144, "bytes": 25000,
             "nll_sum": 1234.5, "worker": "worker-0", "attempts": 1}, ...],
 "progress": {"windows_done": 64, "windows_total": 512},
 "running": {"sliding": {"val_bpb": 2.21, "tokens": 6144, "bytes": 25000}},
 "eta_s": 12.5}
```

States: `queued`, `running`, `succeeded`, `failed`, `cancelled`.

`GET /v1/jobs/{job_id}/events` is a stream of Server-Sent Events
(`text/event-stream`):

| event | `data` | when |
|---|---|---|
| `progress` | the job object | whenever a batch lands or the state changes |
| `report` | the report | once, when the job succeeded; the stream ends |
| `end` | the job object | once, when the job failed or was cancelled; the stream ends |

`GET /v1/jobs/{job_id}/report` is 409 until the job succeeded, then:

```json
{"job": "j_…", "reports": [<golf eval --json report objects>],
 "table": [{"protocol": "sliding", "val_bpb": 2.21, "delta_bpb": 0.0}, ...],
 "artifact": {"id": "...", "total_bytes": 197272, "verdict": "fits", "flags": [...]},
 "flags": ["non_causal_protocol:slot", ...],
 "environment": {"device": "cpu", "torch": "2.13.0+cpu", "workers": 2,
                 "golf_eval": "0.1.0"},
 "digest": "<sha256 of artifact, dataset, protocols, params, code version>"}
```

## Operations

`GET /healthz` answers `{"ok": true, "workers": 2, "ray": true, "db": true}` (`ok` is
false while the database or Ray is down). `GET /metrics` is Prometheus text:
`golf_jobs{state=…}`, `golf_shards{state=…}`, `golf_windows_total`,
`golf_windows_per_second`, `golf_worker_busy_seconds_total{worker=…}`.
"""

# FastAPI documents its own validation-error shape; the service answers every error,
# 422 included, as {"detail": "<one line>"} (service/errors.py), so these are left out.
HIDDEN_SCHEMAS = {"HTTPValidationError", "ValidationError"}
METHODS = ("get", "post", "put", "patch", "delete")


def openapi() -> dict[str, Any]:
    """The schema of the app as `golf serve` builds it; nothing is started or written."""
    sys.path.insert(0, str(ROOT))
    from service.app import create_app
    from service.auth import ApiKeys, Caller
    from service.settings import Settings

    settings = Settings(data_root=Path("data"), state_dir=Path("state"))
    return create_app(settings, ApiKeys({"docs": Caller("docs")})).openapi()


# ------------------------------------------------------------------ rendering helpers


def cell(text: str) -> str:
    """One Markdown table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def paragraph(text: str | None) -> str:
    """A schema description's first paragraph, on one line."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if ref else None


def type_of(schema: dict[str, Any]) -> str:
    if name := ref_name(schema):
        return f"[`{name}`](#{anchor(name)})"
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf", schema.get("oneOf"))
        return " or ".join(type_of(s) for s in options)
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" or "additionalProperties" in schema:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return f"object of {type_of(extra)}"
        return "object"
    if isinstance(kind, list):
        return " or ".join(f"`{k}`" for k in kind)
    return f"`{kind}`" if kind else "any"


CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("pattern", "matches `{}`"),
)


def number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def constraints(schema: dict[str, Any]) -> list[str]:
    found = []
    for option in [schema, *schema.get("anyOf", [])]:
        for key, text in CONSTRAINTS:
            if key in option:
                found.append(text.format(number(option[key])))
    return found


def notes(schema: dict[str, Any]) -> str:
    parts = []
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    parts += constraints(schema)
    if description := paragraph(schema.get("description")):
        parts.append(description)
    return cell("; ".join(parts))


def fields_table(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return [f"Type: {type_of(schema)}.", ""]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | notes |", "|---|---|---|---|"]
    for name, prop in properties.items():
        need = "yes" if name in required else "no"
        lines.append(f"| `{name}` | {cell(type_of(prop))} | {need} | {notes(prop)} |")
    if schema.get("additionalProperties") is False:
        lines += ["", "Other fields are rejected (422)."]
    return [*lines, ""]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if name := ref_name(schema):
        return spec["components"]["schemas"][name]
    return schema


# ------------------------------------------------------------------ sections


def operation(spec: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    summary = op.get("summary", "")
    description = " ".join(op.get("description", "").split())
    lines += [f"**{summary}.** {description}".rstrip(), ""]
    secured = bool(op.get("security", spec.get("security")))
    lines += [f"Auth: {'API key' if secured else 'none'}.", ""]

    if params := op.get("parameters"):
        lines += ["Parameters:", "", "| name | in | type | required | notes |"]
        lines.append("|---|---|---|---|---|")
        for p in params:
            schema = dict(p.get("schema", {}))
            if "description" in p:
                schema["description"] = p["description"]
            need = "yes" if p.get("required") else "no"
            lines.append(
                f"| `{p['name']}` | {p['in']} | {cell(type_of(schema))} | {need} "
                f"| {notes(schema)} |"
            )
        lines.append("")

    if body := op.get("requestBody"):
        for media, content in sorted(body.get("content", {}).items()):
            schema = content.get("schema", {})
            name = ref_name(schema)
            title = f"[`{name}`](#{anchor(name)})" if name else type_of(schema)
            lines += [f"Request body (`{media}`): {title}", ""]
            lines += fields_table(resolve(spec, schema))

    lines += ["Responses:", ""]
    for status, response in sorted(op.get("responses", {}).items()):
        text = response.get("description", "")
        if status == "422":
            lines.append(f'- `422` {text}: `{{"detail": "<one line>"}}`')
            continue
        kinds = []
        for media, content in sorted(response.get("content", {}).items()):
            schema = content.get("schema", {})
            kinds.append(f"{type_of(schema)} (`{media}`)" if schema else f"`{media}`")
        lines.append(f"- `{status}` {text}" + (": " + ", ".join(kinds) if kinds else ""))
    return [*lines, ""]


def endpoints(spec: dict[str, Any]) -> list[str]:
    """Grouped by tag, tags in order of first use, operations in the schema's order."""
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in spec["paths"].items():
        for method in METHODS:
            if op := item.get(method):
                tag = (op.get("tags") or ["other"])[0]
                groups.setdefault(tag, []).append((method, path, op))
    lines = ["## Endpoints", ""]
    for tag, ops in groups.items():
        lines += [f"Tag `{tag}`:", ""]
        for method, path, op in ops:
            lines += operation(spec, method, path, op)
    return lines


def schemas(spec: dict[str, Any]) -> list[str]:
    lines = ["## Schemas", ""]
    for name, schema in sorted(spec["components"]["schemas"].items()):
        if name in HIDDEN_SCHEMAS:
            continue
        lines += [f'<a id="{anchor(name)}"></a>', "", f"### `{name}`", ""]
        if description := paragraph(schema.get("description")):
            lines += [description, ""]
        lines += fields_table(schema)
    return lines


def render(spec: dict[str, Any]) -> str:
    info = spec["info"]
    lines = [
        "# golf-eval HTTP API (v1)",
        "",
        "<!-- Generated by scripts/gen_api_docs.py from the service's OpenAPI schema;",
        "     edit the script (preface) or the service, then run it. Do not edit here. -->",
        "",
        f"{info['title']} {info['version']}: {info.get('summary', '')}",
        "",
        PREFACE,
        *endpoints(spec),
        *schemas(spec),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--out", type=Path, default=API_MD)
    args = parser.parse_args(argv)
    text = render(openapi())
    if args.check:
        current = args.out.read_text("utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, "utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
