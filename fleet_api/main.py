"""The FastAPI application: routes per resource, services on app.state."""

import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.exc import DataError

from fleet_api import __version__
from fleet_api.api.limits import BODY_CAP, body_too_large, validation_failed
from fleet_api.api.routes import (
    admin,
    alerts,
    bridges,
    claims,
    commands,
    config,
    devices,
    groups,
    registry,
    reports,
    site,
    updates,
)
from fleet_api.dashboard import routes as dashboard
from fleet_api.deps import Services
from fleet_api.metrics import FLEET, HTTP_LATENCY

access_log = logging.getLogger("simpul.access")
log = logging.getLogger("simpul.api")

# Swagger UI from the dashboard's vendored files (scripts/build-dashboard.sh), never a CDN:
# a command centre off the internet reads /docs too.
SWAGGER_JS = "/static/vendor/swagger-ui-bundle.js"
SWAGGER_CSS = "/static/vendor/swagger-ui.css"
_VENDOR = Path(__file__).parent / "dashboard" / "static" / "vendor"

# Error answers documented on each operation where they can occur (`document_errors`).
ERROR_SCHEMA = {"title": "Error", "type": "object", "required": ["detail"],
                "properties": {"detail": {"title": "Detail", "type": "string"}}}
_ERRORS = {
    "401": "no token, or an unknown or revoked one",
    "403": "the token's role may not do this",
    "404": "no such resource",
    "409": "the resource's state does not allow it (already exists, stale version, "
           "one already running)",
    "413": "the request body is over the route's cap",
    "422": "the request is not valid, or a value cannot be stored",
    "429": "too many failed sign-ins from this address; retry after `Retry-After` seconds",
}
_WRITES = ("post", "put", "patch", "delete")


def document_errors(schema: Dict[str, Any]) -> Dict[str, Any]:
    """Add the error answers to each operation of an OpenAPI document, in place: 401, 403
    and 429 where a token is needed (the operation names the bearer scheme), 404 where the
    path names a resource, 409 on writes, 413 and 422 where there is a body (422 also
    where there are parameters). What a route documents itself is kept."""
    ref = {"$ref": "#/components/schemas/Error"}
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head", "options"):
                continue
            codes = []
            if op.get("security"):
                codes += ["401", "403", "429"]
            if "{" in path:
                codes.append("404")
            if method in _WRITES:
                codes.append("409")
            if "requestBody" in op:
                codes += ["413", "422"]
            elif op.get("parameters"):
                codes.append("422")
            responses = op.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, {
                    "description": _ERRORS[code],
                    "content": {"application/json": {"schema": ref}}})
            op["responses"] = dict(sorted(responses.items()))
    return schema


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Simpul fleet API", version=__version__,
                  description="Registry, telemetry, twin, tiers, commands and alerts "
                              "of a regency's public Wi-Fi, CCTV and sensor points.",
                  max_body_size=BODY_CAP,  # refused with 413 before it is read
                  docs_url=None, redoc_url=None)  # /docs below, from local files
    app.state.services = services
    # The fleet gauges of /metrics, from this app's database (fleet_api/metrics.py).
    FLEET.bind(services.engine, services.settings.heartbeat_timeout_s)
    app.include_router(site.router)
    app.include_router(registry.router)  # before devices: /bulk is not a device id
    app.include_router(devices.router)
    app.include_router(claims.router)
    app.include_router(config.router)
    app.include_router(commands.router)
    app.include_router(groups.router)
    app.include_router(alerts.router)
    app.include_router(reports.router)
    app.include_router(admin.router)
    app.include_router(bridges.router)
    app.include_router(updates.router)
    if services.settings.updates_dir:
        from fastapi.staticfiles import StaticFiles

        # Signed bundles: the boxes check the signature, so no token is needed here.
        app.mount("/updates", StaticFiles(directory=services.settings.updates_dir),
                  name="updates")
    app.include_router(dashboard.api)
    app.include_router(dashboard.router)
    dashboard.mount_static(app)

    generated = app.openapi

    def openapi() -> Dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(generated())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    if not (_VENDOR / "swagger-ui-bundle.js").exists():
        log.warning("/docs needs the vendored Swagger UI: run `make setup`")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=root + SWAGGER_JS, swagger_css_url=root + SWAGGER_CSS,
            swagger_favicon_url="data:,",  # none: not fetched from anywhere
            # validatorUrl: no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None})

    @app.exception_handler(DataError)
    async def unstorable(_request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refuses what SQLite takes: NUL in text, a too long value, an
        # integer beyond its column. The request was wrong, not the server.
        first = str(exc.orig).splitlines()[0] if exc.orig else "value out of range"
        return JSONResponse({"detail": f"a value cannot be stored: {first}"}, status_code=422)

    app.add_exception_handler(RequestValidationError, validation_failed)  # type: ignore[arg-type]
    app.add_exception_handler(413, body_too_large)  # type: ignore[arg-type]

    @app.exception_handler(OverflowError)
    async def out_of_range(_request: Request, _exc: OverflowError) -> JSONResponse:
        # The net under the parameters' own ranges: a number the driver cannot convert.
        return JSONResponse({"detail": "a number is out of the range the fleet stores"},
                            status_code=422)

    @app.exception_handler(UnicodeEncodeError)
    async def unencodable(_request: Request, _exc: UnicodeEncodeError) -> JSONResponse:
        return JSONResponse({"detail": "text must be valid UTF-8 (no unpaired surrogates)"},
                            status_code=422)

    @app.middleware("http")
    async def log_access(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - started
        route = request.scope.get("route")
        HTTP_LATENCY.labels(getattr(route, "path", "other")).observe(elapsed)
        # The path only: query strings can carry a kiosk token and never reach a log.
        access_log.info("%s %s %s %.1fms", request.method, request.url.path,
                        response.status_code, elapsed * 1000)
        return response

    return app
