"""Property-based run against the published OpenAPI schema: schemathesis generates valid and
invalid requests for every operation (admin ones with the token), and no request may produce
a 5xx."""

from __future__ import annotations

import collections

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES_PER_OPERATION = 40


def test_no_generated_request_gets_a_server_error(platform_copy, serving_server):
    """Positive and negative cases for every operation in /schema/openapi.json; every
    response is below 500, and generated payments were both scored and refused."""
    with serving_server(platform_copy) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
        statuses: collections.Counter = collections.Counter()
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.label for op in operations} >= {
            "POST /v1/forecast",
            "POST /v1/fraud/score",
            "POST /v1/fraud/score:batch",
            "PUT /v1/admin/models/{name}/rollout",
        }
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(server, operation, mode, statuses)()
                except Unsatisfiable:
                    # An operation without parameters or body has no invalid inputs.
                    assert mode is GenerationMode.NEGATIVE, operation.label
    by_status = collections.Counter()
    for (label, _, status), n in statuses.items():
        by_status[(label, status // 100)] += n
    assert by_status[("POST /v1/fraud/score", 2)] > 0
    assert by_status[("POST /v1/fraud/score", 4)] > 0
    assert by_status[("POST /v1/forecast", 4)] > 0


def _fuzz(server, operation, mode, statuses):
    @given(case=operation.as_strategy(generation_mode=mode, headers=server.admin))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        response = case.call(base_url=server.url, timeout=10)
        statuses[(operation.label, mode.value, response.status_code)] += 1
        assert response.status_code < 500, (
            operation.label,
            response.status_code,
            response.text[:500],
            case.body,
        )

    return call
