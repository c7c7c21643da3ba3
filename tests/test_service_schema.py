"""N11 (issue 14): the API conforms to its own OpenAPI document under generated requests.

Schemathesis reads /openapi.json from a live server (uvicorn, real sockets) and sends
each operation a bounded number of generated requests, valid and invalid, with an
owner's key: every answer must be documented for its operation, carry the documented
body shape (4xx included: `{"detail": str}`), and never be a 5xx; schema-invalid
requests must be refused. One check is left out: `positive_data_acceptance` expects
every schema-valid request to succeed, which no service that validates meaning can do
(a well-formed upload that is no .golf artifact is 422, an unknown id 404).
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from service_support import auth, make_settings, serve_http

from service.settings import Settings

EXAMPLES = 30
"""Generated requests per operation and phase (bounded: the suite stays fast)."""


@pytest.fixture(scope="module")
def api_url(ray_cluster, tmp_path_factory: pytest.TempPathFactory, demo_data):
    root = tmp_path_factory.mktemp("schema")
    fields = make_settings(root, demo_data, workers=1).model_dump()
    with serve_http(Settings(**fields)) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(api_url: str):
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


@pytest.mark.parametrize(
    ("mode", "excluded"),
    [
        (GenerationMode.POSITIVE, [positive_data_acceptance]),
        # Every request here carries the owner's key, so a negative case that drops the
        # Authorization header is not negative once sent; and a query value mutated into
        # an object goes out as repeated keys, which is a valid query. Schema-invalid
        # bodies and values are refused by the strictness tests of
        # test_service_reliability.py instead.
        (GenerationMode.NEGATIVE, [positive_data_acceptance, negative_data_rejection]),
    ],
    ids=["positive", "negative"],
)
def test_every_operation_conforms(api_schema, mode, excluded) -> None:
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def conforms(case) -> None:
            case.call_and_validate(headers=auth("alice"), timeout=30, excluded_checks=excluded)

        try:
            conforms()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to violate (no parameters)
        except Exception as e:  # each failure names its operation; all are reported
            failures.append(f"{operation.label}: {str(e)[:2000]}")
    assert not failures, "\n\n".join(failures)
