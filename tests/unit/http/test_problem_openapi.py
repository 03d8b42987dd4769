"""surefoot.http.problem_openapi / problem_responses: the OpenAPI document matches the 400
problem+json bodies surefoot sends, not FastAPI's 422."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

import surefoot
from surefoot.errors import ConfigurationError
from surefoot.http import PROBLEM_SCHEMA, problem_openapi, problem_responses


class Item(BaseModel):
    name: str


def _app(**options) -> FastAPI:
    app = FastAPI()

    @app.post("/items", status_code=201, responses=problem_responses(409))
    def create(item: Item) -> dict:
        return item.model_dump()

    @app.get("/plain")
    def plain() -> dict:
        return {}

    surefoot.install(app, logging=False)
    problem_openapi(app, **options)
    return app


def test_422_becomes_400_problem_json_and_the_document_matches_the_answer() -> None:
    app = _app()
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
        answer = client.post("/items", json={"name": 5})
    responses = document["paths"]["/items"]["post"]["responses"]
    assert "422" not in responses
    assert responses["400"]["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert responses["409"]["content"]["application/problem+json"]
    assert set(document["paths"]["/plain"]["get"]["responses"]) == {"200", "500"}
    assert document["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("application/problem+json")
    assert set(PROBLEM_SCHEMA["required"]) <= set(answer.json())
    assert app.openapi() is app.openapi()  # generated once


def test_validation_status_422_is_kept_as_problem_json() -> None:
    document = _app(validation_status=422).openapi()
    responses = document["paths"]["/items"]["post"]["responses"]
    assert "application/problem+json" in responses["422"]["content"] and "400" not in responses


def test_bad_arguments_say_what_to_fix() -> None:
    with pytest.raises(ConfigurationError, match="400 or 422"):
        problem_openapi(FastAPI(), validation_status=418)
    with pytest.raises(ConfigurationError, match="4xx or 5xx"):
        problem_responses(200)
    with pytest.raises(ConfigurationError, match="FastAPI"):
        problem_openapi(object())
