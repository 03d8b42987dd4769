"""schemathesis against the service's OpenAPI, for a bounded number of examples: no 5xx, every
error is problem+json, every status and body is the one documented (400, not FastAPI's 422)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from .conftest import Service

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25


def test_openapi_documents_problem_responses(start_service) -> None:
    import httpx

    svc: Service = start_service()
    document = httpx.get(svc.url + "/openapi.json").json()
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    create = document["paths"]["/admin/tenants"]["post"]["responses"]
    assert "422" not in create and "application/problem+json" in create["400"]["content"]
    assert {"401", "409"} <= set(create)


@pytest.mark.parametrize("authorised", [False, True], ids=["anonymous", "admin"])
def test_schemathesis_finds_no_server_error_and_only_problem_json(start_service, authorised: bool) -> None:
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    svc: Service = start_service()
    svc.add_tenant("+14155550100")
    schema = schemathesis.openapi.from_url(svc.url + "/openapi.json")
    headers = {"Authorization": f"Bearer {svc.stack.admin_token}"} if authorised else {}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    seen: set[int] = set()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7

    for operation in operations:
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            response = case.call(headers=headers, timeout=10)
            seen.add(response.status_code)
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), (
                    f"{case.method} {case.path} -> {response.status_code} {content_type}")
            case.validate_response(response, checks=checks)

        run()
    assert max(seen) < 500
    assert 401 in seen if not authorised else {200, 201, 400} & seen
