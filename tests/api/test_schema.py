"""OpenAPI at /api/schema/ (drf-spectacular) and Swagger UI at /api/docs/ (no CDN)."""

from __future__ import annotations

import pytest
import yaml
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


def test_the_schema_is_valid_openapi_3_json(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # raises on an invalid document
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/appointments/events/", "/api/v1/dimescheduler/appointments/",
            "/api/v1/dimescheduler/appointments/{action}/", "/api/v1/dispatches/"} <= set(
        schema["paths"])


def test_the_schema_is_served_as_yaml_by_default(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")  # YAML
    validate_schema(yaml.safe_load(response.content))


def test_the_schema_describes_requests_errors_and_both_key_headers(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    events = schema["paths"]["/api/v1/appointments/events/"]["post"]

    body = events["requestBody"]["content"]["application/json"]["schema"]
    options = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["oneOf"]
    assert options[0] == {"$ref": "#/components/schemas/EventRequest"}
    assert options[1]["type"] == "array" and options[1]["maxItems"] == 500

    for code in ("202", "400", "401", "403", "413", "415", "429", "500", "503"):
        assert code in events["responses"]
    assert events["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert events["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "The API client's key."
    }
    assert schemes["apiKeyHeader"]["name"] == "X-API-KEY"


def test_swagger_ui_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn." not in page and "unpkg" not in page
