"""Fuzz every endpoint of the live API from its OpenAPI schema (schemathesis): no 5xx, no traceback.

Requests carry an admin key (every permission), so the handlers themselves are exercised rather than
only the 401 path; a modest number of examples per operation keeps the default run short.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.generation import GenerationMode  # noqa: E402

MAX_EXAMPLES = 5  # per operation and mode: ~150 requests in all


def _send(api, case) -> tuple[int, str]:
    """Send a generated case through the started app's test client."""
    kwargs = case.as_transport_kwargs(
        base_url="http://testserver", headers={"Authorization": f"Bearer {api.keys['admin']}"}
    )
    kwargs.pop("cookies", None)
    if "data" in kwargs:
        data = kwargs.pop("data")
        kwargs["content" if isinstance(data, bytes | str) else "data"] = data
    response = api.client.request(**kwargs)
    return response.status_code, response.text


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_server_errors(api, mode) -> None:
    schema = schemathesis.openapi.from_dict(api.client.get("/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:
            status, body = _send(api, case)
            assert status < 500, f"{case.method} {case.formatted_path}: {status} {body[:300]}"
            assert "Traceback" not in body
            if status >= 400:
                error = json.loads(body)
                assert set(error) == {"error", "field"} and error["error"], body

        try:
            check()
        except Unsatisfiable:
            # Nothing to break in an operation without inputs (the probes) in negative mode.
            assert mode == GenerationMode.NEGATIVE, operation.label


def test_every_endpoint_of_the_issue_is_in_the_schema(api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    expected = {
        "/v1/support/ask": "post",
        "/v1/support/ask/stream": "post",
        "/v1/support/conversations": "get",
        "/v1/support/conversations/{conversation_id}": "get",
        "/v1/support/feedback": "post",
        "/v1/support/handoffs": "get",
        "/v1/support/handoffs/metrics": "get",
        "/v1/support/handoffs/{case_id}": "get",
        "/v1/support/handoffs/{case_id}/take": "post",
        "/v1/support/handoffs/{case_id}/reply": "post",
        "/v1/support/handoffs/{case_id}/release": "post",
        "/v1/support/handoffs/{case_id}/resolve": "post",
        "/v1/finance/classify": "post",
        "/v1/finance/items": "post",
        "/v1/finance/alerts": "get",
        "/v1/finance/alerts/{alert_id}/acknowledge": "post",
        "/v1/recommend/users/{user_id}": "get",
        "/v1/recommend/items/{item_id}/similar": "get",
        "/healthz": "get",
        "/readyz": "get",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), path
