"""schemathesis against /openapi.json: any request the schema allows gets an answer, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from tests.test_api import make_client

client = make_client()
schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.fixture(scope="module", autouse=True)
def running() -> Iterator[None]:
    """The lifespan runs once, so every generated request meets the real wiring."""
    with client:
        yield


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_schema_allows_gets_a_5xx(case: Case[Any]) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text)


def test_the_schema_declares_every_answer_a_send_can_get() -> None:
    spec = client.get("/openapi.json").json()
    answers = spec["paths"]["/api/messages"]["post"]["responses"]
    assert {"202", "404", "409", "413", "422", "503"} <= set(answers)
    invalid = spec["components"]["schemas"]["Invalid"]["properties"]["detail"]
    assert {"type": "string"} in invalid["anyOf"]  # webchat's own 422s are one line
    refused = client.post("/api/messages", json={"hex": "zz"})
    assert refused.status_code == 422 and isinstance(refused.json()["detail"], str)
