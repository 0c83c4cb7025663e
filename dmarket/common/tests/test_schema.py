"""GET /api/schema/: the OpenAPI document, open to anyone; and /api/'s JSON 404."""

import json
import re

import pytest
import yaml
from django.urls import URLPattern, URLResolver, get_resolver

from dmarket.conftest import client_for

URL = "/api/schema/"

pytestmark = pytest.mark.django_db


def api_routes():
    """Every route under /api/, from the URL configuration itself."""
    (api,) = [p for p in get_resolver().url_patterns
              if isinstance(p, URLResolver) and str(p.pattern) == "api/"]
    assert all(isinstance(p, URLPattern) for p in api.url_patterns)
    return {"/api/" + str(p.pattern) for p in api.url_patterns}


def shape(path):
    """'/api/machines/<int:pk>/' and '/api/machines/{id}/' both -> '/api/machines/{}/'."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def get_json_schema():
    response = client_for().get(URL, {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_is_served_to_anonymous_users_as_openapi_3():
    response = client_for().get(URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "dmarket API"


def test_schema_as_json():
    response = client_for().get(URL, HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert json.loads(response.content)["openapi"].startswith("3.")


def test_schema_ignores_a_bad_token():
    response = client_for().get(URL, HTTP_AUTHORIZATION="Token not-a-real-token")

    assert response.status_code == 200


def test_schema_documents_every_api_route():
    routes = api_routes()
    # The schema view leaves itself out of the document it serves, and the Swagger UI page
    # that shows it (HTML, not an API route).
    documented = {shape(p) for p in get_json_schema()["paths"]} | {URL, "/api/docs/"}

    assert {shape(r) for r in routes} == documented
    assert len(routes) == len(documented)


def test_schema_documents_each_views_methods():
    paths = get_json_schema()["paths"]

    methods = {path: sorted(k for k in ops if k != "parameters") for path, ops in paths.items()}
    assert methods["/api/auth/register/"] == ["post"]
    assert methods["/api/auth/login/"] == ["post"]
    assert methods["/api/auth/me/"] == ["get"]
    assert methods["/api/machines/"] == ["get", "post"]
    assert methods["/api/machines/{id}/"] == ["delete", "get"]
    assert methods["/api/machines/{id}/heartbeat/"] == ["post"]
    assert methods["/api/credits/"] == ["get"]
    assert methods["/api/credits/transactions/"] == ["get"]
    assert methods["/api/prices/"] == ["get"]


def test_schema_documents_the_token_scheme():
    document = get_json_schema()

    assert document["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "Token-based authentication with required prefix \"Token\""}


@pytest.mark.parametrize("path", ["/api/nope/", "/api/machines/abc/", "/api/v2/machines/",
                                  "/api/schema/extra/"])
def test_unknown_api_path_is_a_json_404(path):
    response = client_for().get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"No such page: {path}"}


def test_unknown_api_path_is_404_for_any_method():
    response = client_for().post("/api/nope/", {"a": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "No such page: /api/nope/"}


def test_unknown_path_outside_the_api_is_not_json():
    response = client_for().get("/nope/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_schema_is_read_only(method):
    response = getattr(client_for(), method)(URL)

    # The schema view speaks OpenAPI's YAML, its errors included.
    assert response.status_code == 405
    assert yaml.safe_load(response.content) == {"detail": f'Method "{method.upper()}" not allowed.'}


@pytest.mark.parametrize("path", ["/api/auth/register/", "/api/auth/login/"])
def test_schema_documents_the_throttles_429(path):
    responses = get_json_schema()["paths"][path]["post"]["responses"]

    assert responses["429"]["description"].startswith("Too many attempts")
    assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    (content,) = responses["429"]["content"].values()
    assert content["schema"] == {"$ref": "#/components/schemas/Detail"}


def test_schema_documents_the_detail_body():
    assert get_json_schema()["components"]["schemas"]["Detail"] == {
        "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
