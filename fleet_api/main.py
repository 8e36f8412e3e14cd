"""The FastAPI application: routes per resource, services on app.state."""

import logging
import time
from typing import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
from fleet_api.metrics import HTTP_LATENCY

access_log = logging.getLogger("simpul.access")


def create_app(services: Services) -> FastAPI:
    app = FastAPI(title="Simpul fleet API", version=__version__,
                  description="Registry, telemetry, twin, tiers, commands and alerts "
                              "of a regency's public Wi-Fi, CCTV and sensor points.",
                  max_body_size=BODY_CAP)  # refused with 413 before it is read
    app.state.services = services
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
