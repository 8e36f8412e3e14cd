"""Dashboard pages. Each page is HTML plus a small script that reads the same JSON API
every other client uses; the API enforces roles, the page only hides what a role may
not do."""

import logging
from pathlib import Path
from typing import Any, Dict, Optional

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from fleet_api.auth import COOKIE, Principal, lookup
from fleet_api.dashboard.i18n import LANGUAGES, strings
from fleet_api.deps import ServicesDep, Viewer

log = logging.getLogger("simpul.dashboard")
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", tags=["session"])


def _lang(request: Request) -> str:
    lang = request.query_params.get("lang") or request.cookies.get("lang", "id")
    return lang if lang in LANGUAGES else "id"


def _page(request: Request, services: Any, name: str, **extra: Any) -> HTMLResponse:
    lang = _lang(request)
    principal: Optional[Principal] = lookup(services.engine, request.cookies.get(COOKIE, ""))
    context: Dict[str, Any] = {"request": request, "t": strings(lang), "lang": lang,
                               "principal": principal, "page": name, **extra}
    template = name if principal is not None else "login.html"
    status = 200 if principal is not None else 401
    response = templates.TemplateResponse(request, template, context, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, samesite="strict", max_age=365 * 86400)
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, services, "overview.html")


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def point(device_id: str, request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, services, "device.html", device_id=device_id)


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, services, "alerts.html")


@router.get("/tiers", response_class=HTMLResponse)
def tiers(request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, services, "tiers.html")


@router.get("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@api.get("/me")
def me(who: Viewer) -> Dict[str, str]:
    """Who this token or session is: the dashboard shows controls by role."""
    return {"role": who.role, "name": who.name}


def mount_static(app: Any) -> None:
    from fastapi.staticfiles import StaticFiles

    static = HERE / "static"
    if not (static / "vendor" / "uPlot.iife.min.js").exists():
        log.warning("dashboard charts need vendored assets: run `make setup`")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
