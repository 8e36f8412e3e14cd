"""The OpenAPI document and /docs: the bearer scheme declared and named by every
operation that needs a token, the error answers each operation can give documented, and
Swagger UI served from the fleet's own files (an offline command centre has no CDN)."""

import re
import warnings
from typing import Any, Dict, Iterator, Tuple

import pytest

from fleet_api.db import make_engine, migrate
from fleet_api.deps import Services
from fleet_api.main import SWAGGER_CSS, SWAGGER_JS, create_app
from fleet_api.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi')}/fleet.db"
    engine = make_engine(url)
    migrate(engine)
    with TestClient(create_app(Services(engine=engine, settings=Settings(db_url=url)))) as c:
        yield c
    engine.dispose()


def operations(doc: Dict[str, Any]) -> Iterator[Tuple[str, str, Dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def test_the_bearer_scheme_is_declared_and_named_by_api_operations(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items()
              if s["type"] == "http" and s["scheme"] == "bearer"]
    assert bearer == ["HTTPBearer"]
    api = [(m, p, op) for m, p, op in operations(doc) if p.startswith("/api/v1/")]
    assert len(api) > 40
    for method, path, op in api:
        assert op.get("security") == [{"HTTPBearer": []}], (method, path)
    for path in ("/healthz", "/metrics"):  # scraped and probed without a token
        assert "security" not in doc["paths"][path]["get"]


def test_error_answers_are_documented_where_they_can_occur(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["schemas"]["Error"]["required"] == ["detail"]
    for method, path, op in operations(doc):
        codes = set(op["responses"])
        if op.get("security"):
            assert {"401", "403"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= codes, (method, path)
        if method in ("post", "put", "delete"):
            assert "409" in codes, (method, path)
        if method == "get":
            assert "409" not in codes and "413" not in codes, (method, path)
    register = doc["paths"]["/api/v1/devices"]["post"]["responses"]
    assert register["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    # What a route documents itself is kept (FastAPI's validation error schema here).
    assert "HTTPValidationError" in str(register["422"])


def test_swagger_ui_is_served_from_the_fleet_itself(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
    assert SWAGGER_JS in urls and SWAGGER_CSS in urls and "/openapi.json" in urls
    assert not re.search(r"https?://", page.text), page.text
    for asset, kind in ((SWAGGER_JS, "javascript"), (SWAGGER_CSS, "css")):
        got = client.get(asset)
        assert got.status_code == 200, f"{asset}: run scripts/build-dashboard.sh"
        assert kind in got.headers["content-type"]
        assert len(got.content) > 10_000
    assert "SwaggerUIBundle" in client.get(SWAGGER_JS).text
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN
