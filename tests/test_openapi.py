"""`GET /api/v1/openapi.json` stays true: valid OpenAPI 3.1, exactly the `/api/v1` routes and
methods the site serves, and every answer of the real views (success and error alike) matches the
document's schema and headers for its status. The fuzzing run is tests/test_schemathesis.py."""

import re
from datetime import timedelta
from typing import Any

import jsonschema_rs
import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from connections import urls
from connections.models import ApiKey, Connection
from connections.openapi import build_document
from tests.factories import ConnectionFactory, ProviderFactory, provider_for
from tests.support.tokens import api_client, authorized_at_server, expire_in
from tokenadmin.hashing import sha256_hex

DOCUMENT = build_document()
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
Status = Connection.Status


def documented_response(path: str, method: str, status: int) -> dict[str, Any]:
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    response = responses[str(status)]
    if "$ref" in response:
        response = DOCUMENT["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def assert_documented(path: str, method: str, response: HttpResponse) -> Any:
    """The answer's status, headers and JSON body are the ones the document gives; the body."""
    documented = documented_response(path, method, response.status_code)
    assert response["Content-Type"] == "application/json"
    for name, header in documented.get("headers", {}).items():
        if header.get("required") or "const" in header["schema"]:
            assert name in response.headers, f"{name} missing from a {response.status_code}"
        if name in response.headers:
            validator = jsonschema_rs.Draft202012Validator(header["schema"])
            validator.validate(response[name])
    schema = documented["content"]["application/json"]["schema"]
    validator = jsonschema_rs.Draft202012Validator(
        {**schema, "components": DOCUMENT["components"]}, validate_formats=True
    )
    body = response.json()
    validator.validate(body)
    return body


# --- the document ---------------------------------------------------------------------------------
def test_it_is_valid_openapi_3_1():
    OPENAPI_31_VALIDATOR.validate(DOCUMENT)
    for name, schema in DOCUMENT["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


@pytest.mark.django_db
def test_it_is_served_without_a_key():
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == DOCUMENT


def api_routes() -> set[str]:
    """`/api/v1` routes in connections/urls.py, written as OpenAPI paths."""
    assert reverse("api-connection-list") == "/api/v1/connections"  # mounted at the root
    routes = {"/" + str(pattern.pattern) for pattern in urls.urlpatterns}
    return {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", r) for r in routes if r.startswith("/api/v1/")}


def test_it_documents_every_api_route_and_no_other():
    assert api_routes() == set(DOCUMENT["paths"])


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(DOCUMENT["paths"]))
def test_it_documents_exactly_the_methods_each_route_allows(path):
    # Django's require_GET / require_POST answer 405 with the allowed methods in `Allow`.
    response = Client().patch(path.replace("{slug}", "any"))
    assert response.status_code == 405
    allowed = {m.strip().lower() for m in response["Allow"].split(",")}
    assert allowed == set(DOCUMENT["paths"][path]) & HTTP_METHODS


def test_every_operation_documents_401_unless_it_needs_no_key():
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            if operation.get("security") == []:
                assert "401" not in operation["responses"]
            else:
                assert "401" in operation["responses"], f"{method} {path}"


# --- the real answers -----------------------------------------------------------------------------
@pytest.fixture
def rows(db) -> dict[str, Connection]:
    down = ProviderFactory(slug="down", token_url="http://127.0.0.1:1/token")
    made = {
        "active": ConnectionFactory(slug="active", authorized=True),
        "reauth": ConnectionFactory(slug="reauth", authorized=True, status=Status.NEEDS_REAUTH),
        "pending": ConnectionFactory(slug="pending"),
        "disabled": ConnectionFactory(slug="disabled", authorized=True, status=Status.DISABLED),
        "down": ConnectionFactory(slug="down", provider=down, authorized=True),
        "other": ConnectionFactory(slug="other", authorized=True),
    }
    Connection.objects.filter(slug="down").update(access_expires_at=timezone.now())
    return made


@pytest.fixture
def client(rows) -> Client:
    allowed = [c for slug, c in rows.items() if slug != "other"]
    _, raw_key = ApiKey.issue(name="pipeline", connections=allowed)
    return api_client(raw_key)


LIST = "/api/v1/connections"
DETAIL = "/api/v1/connections/{slug}"
TOKEN = "/api/v1/connections/{slug}/token"
REFRESH = "/api/v1/connections/{slug}/refresh"
REJECTED = "/api/v1/connections/{slug}/token/rejected"


def test_the_list_and_its_pages_match(client):
    first = assert_documented(LIST, "get", client.get(LIST, {"limit": 2}))
    assert [c["slug"] for c in first["connections"]] == ["active", "disabled"]
    second = assert_documented(LIST, "get", client.get(first["next"]))
    assert second["connections"]
    filtered = assert_documented(LIST, "get", client.get(LIST, {"status": "pending,needs_reauth"}))
    assert {c["slug"] for c in filtered["connections"]} == {"pending", "reauth"}
    assert filtered["next"] is None
    for bad in ({"status": "asleep"}, {"limit": "0"}, {"cursor": "not!issued"}):
        assert_documented(LIST, "get", client.get(LIST, bad))
    assert_documented(LIST, "get", Client().get(LIST))


def test_the_detail_answers_match(client):
    for slug, status in (("active", 200), ("pending", 200), ("other", 403), ("nope", 404)):
        response = client.get(f"/api/v1/connections/{slug}")
        assert response.status_code == status
        assert_documented(DETAIL, "get", response)


def test_the_token_answers_match(client):
    cases = (
        ("active", {}, 200),
        ("active", {"min_ttl": "many"}, 400),
        ("other", {}, 403),
        ("nope", {}, 404),
        ("reauth", {}, 409),
        ("pending", {}, 409),
        ("disabled", {}, 409),
        ("down", {}, 503),
    )
    for slug, params, status in cases:
        response = client.get(f"/api/v1/connections/{slug}/token", params)
        assert response.status_code == status, (slug, response.content)
        body = assert_documented(TOKEN, "get", response)
        if status == 409:
            assert body["dashboard_url"]
    unauthorized = Client().get("/api/v1/connections/active/token")
    assert_documented(TOKEN, "get", unauthorized)


@pytest.fixture
def live(db, auth_server) -> tuple[Client, Connection]:
    """A connection at the test authorization server: refreshes really happen."""
    provider = provider_for(auth_server)
    connection = authorized_at_server(auth_server, provider, slug="live", username="alice")
    _, raw_key = ApiKey.issue(name="pipeline", connections=[connection])
    return api_client(raw_key), connection


def test_the_refresh_answers_match(live, rows):
    client, connection = live
    for url, status in (
        ("/api/v1/connections/live/refresh", 200),
        ("/api/v1/connections/active/refresh", 403),
        ("/api/v1/connections/nope/refresh", 404),
    ):
        response = client.post(url)
        assert response.status_code == status
        assert_documented(REFRESH, "post", response)
    assert connection.access_token != api_token(client, "live")
    assert_documented(REFRESH, "post", Client().post("/api/v1/connections/live/refresh"))


def api_token(client: Client, slug: str) -> str:
    return client.get(f"/api/v1/connections/{slug}/token").json()["access_token"]


def test_the_rejected_token_answers_match(live):
    client, connection = live
    url = "/api/v1/connections/live/token/rejected"
    current = sha256_hex(connection.access_token)
    replaced = assert_documented(
        REJECTED, "post", client.post(url, {"token_sha256": current}, "application/json")
    )
    assert replaced["refreshed"] is True
    again = assert_documented(
        REJECTED, "post", client.post(url, {"token_sha256": current}, "application/json")
    )
    assert again["refreshed"] is False
    for bad in ({"token_sha256": current.upper()}, {}, []):
        response = client.post(url, bad, "application/json")
        assert response.status_code == 400
        assert_documented(REJECTED, "post", response)


def test_a_token_refreshed_on_the_way_still_matches(live):
    client, connection = live
    expire_in(connection, 5)
    body = assert_documented(TOKEN, "get", client.get("/api/v1/connections/live/token"))
    assert body["expires_in"] > timedelta(minutes=5).total_seconds()


def test_an_api_url_that_names_nothing_answers_json_404(client):
    # A slug with a character no slug has matches no route: still JSON, as documented.
    response = client.get("/api/v1/connections/l&/token")
    assert response.status_code == 404
    assert_documented(TOKEN, "get", response)
    assert client.get("/api/v2/anything").json()["error"] == "not_found"
    # Outside the API, Django's own page.
    page = Client().get("/no-such-page/")
    assert (page.status_code, page["Content-Type"]) == (404, "text/html; charset=utf-8")
