"""Health, metrics, kiosk sign-in and the dashboard's entry page."""

from typing import Optional

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fleet_api.auth import COOKIE, lookup
from fleet_api.deps import ServicesDep

router = APIRouter()


@router.get("/healthz", tags=["site"])
def healthz() -> dict:  # type: ignore[type-arg]
    return {"status": "ok"}


@router.get("/metrics", tags=["site"], response_class=Response)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/login", tags=["site"], response_model=None)
def login(request: Request, services: ServicesDep,
          token: Optional[str] = Query(None, max_length=200)
          ) -> "RedirectResponse | HTMLResponse":
    """Trade a token for an HttpOnly session cookie (wall screens), then go to the overview."""
    client = request.client.host if request.client else "?"
    if services.limiter.blocked_for(client):
        return HTMLResponse("<h1>Terlalu banyak percobaan / too many tries</h1>",
                            status_code=429)
    if not token or lookup(services.engine, token) is None:
        services.limiter.failed(client)
        return HTMLResponse("<h1>Token tidak dikenal / unknown token</h1>", status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 86400)
    return response
