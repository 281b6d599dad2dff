"""/openapi.json is a valid OpenAPI 3.1 document that client generators can follow: one media
type per success answer, every error documented as the JSON Problem it is."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import SecretStr

from api.app import create_app
from settings import Settings

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module", params=["off", "required"])
def document(request, tmp_path_factory) -> dict:
    """The document with keys off, and with keys required (every /v1 operation answers 401).
    Served without the app's lifespan: the document needs no database."""
    auth: dict = {"auth": request.param}
    if request.param == "required":
        auth["bootstrap_key"] = SecretStr("bootstrap-" + "k" * 32)
    home = tmp_path_factory.mktemp("openapi")
    settings = Settings(database_url=f"sqlite:///{home / 'unused.db'}", home=home, **auth)
    r = TestClient(create_app(settings)).get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    errors = [f"{list(e.absolute_path)}: {e.message[:300]}"
              for e in OpenAPIV31SpecValidator(document).iter_errors()]  # fmt: skip
    assert errors == []


def test_every_success_answers_one_media_type(document):
    several = {name: sorted(response.get("content", {}))
               for name, operation in operations(document)
               for status, response in operation["responses"].items()
               if status.startswith("2") and len(response.get("content", {})) > 1}  # fmt: skip
    assert several == {}


def test_every_error_is_documented_as_the_json_problem(document):
    wrong = {}
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if status.startswith("4"):
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if set(response.get("content", {})) != {"application/json"} or schema != {
                    "$ref": "#/components/schemas/Problem"
                }:
                    wrong[f"{name} {status}"] = response.get("content")
    assert wrong == {}


def test_files_have_their_own_operations(document):
    paths = document["paths"]
    for path in ("/v1/jobs/{job_id}/snapshots/{epoch}/weights.npz",
                 "/v1/jobs/{job_id}/snapshots/{epoch}/model.onnx"):  # fmt: skip
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert list(content) == ["application/octet-stream"]
    snapshot = paths["/v1/jobs/{job_id}/snapshots/{epoch}"]["get"]
    assert list(snapshot["responses"]["200"]["content"]) == ["application/json"]
    assert "format" not in {p["name"] for p in snapshot["parameters"]}


def test_the_event_stream_documents_one_event_as_its_schema(document):
    responses = document["paths"]["/v1/jobs/{job_id}/events"]["get"]["responses"]
    stream = responses["200"]["content"]["text/event-stream"]
    assert "itemSchema" not in stream
    assert {"data", "event", "id"} <= set(stream["schema"]["properties"])
    if "401" in responses:
        assert list(responses["401"]["content"]) == ["application/json"]


def test_401_is_documented_on_every_v1_operation_exactly_when_keys_are_required(document):
    required = "securitySchemes" in document.get("components", {})
    documented = {name: "401" in op["responses"]
                  for name, op in operations(document) if " /v1/" in name}  # fmt: skip
    assert documented
    assert set(documented.values()) == {required}
