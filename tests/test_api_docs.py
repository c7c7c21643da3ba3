"""docs/API.md is generated from the service's OpenAPI schema and must not drift from it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import ray

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gen_api_docs", ROOT / "scripts" / "gen_api_docs.py")
assert spec is not None and spec.loader is not None
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def test_api_md_is_the_generated_one() -> None:
    text = gen.render(gen.openapi())
    committed = (ROOT / "docs" / "API.md").read_text("utf-8")
    assert committed == text, "docs/API.md is stale: run .venv/bin/python scripts/gen_api_docs.py"


def test_generation_is_deterministic_and_starts_nothing() -> None:
    was_up = ray.is_initialized()
    first, second = gen.render(gen.openapi()), gen.render(gen.openapi())
    assert first == second
    assert ray.is_initialized() == was_up, "building the app for its schema started Ray"


def test_every_operation_and_schema_is_documented() -> None:
    schema = gen.openapi()
    text = gen.render(schema)
    for path, item in schema["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    for name in schema["components"]["schemas"]:
        if name not in gen.HIDDEN_SCHEMAS:
            assert f"### `{name}`" in text
    # No link to a schema the document does not define.
    for target in re.findall(r"\]\(#([\w-]+)\)", text):
        assert f'<a id="{target}"></a>' in text, f"dangling link #{target}"
