"""Limits on what a request may carry, and errors that never echo it back in bulk.

Bodies are capped by FastAPI's own `max_body_size` (Starlette's body-limit middleware:
it refuses a Content-Length over the cap before reading a byte, and counts the bytes of
a chunked body as they arrive), so nothing over the cap is ever parsed. The caps are
here; `main.py` sets the default and the two routes that need more name theirs.
"""

import math
import reprlib
from typing import Annotated, Any, Dict, List, Optional

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

MIB = 1024 * 1024
BODY_CAP = 1 * MIB
# POST /devices/bulk takes up to 10,000 devices: at 1.6 KiB each (id, site and district
# at full length, a few tags) that is 16 MiB; a typical 10,000 (short sites, one tag)
# is 2-3 MiB.
BULK_BODY_CAP = 16 * MIB
# POST /updates/rollouts may list up to 100,000 device ids of up to 63 characters.
ROLLOUT_BODY_CAP = 8 * MIB

EXCERPT_CHARS = 80
MAX_ERRORS = 20
JSON_MAX_DEPTH = 32
# Every string field has its own max_length; this is the net under any that has not.
STR_MAX = 16384

_short = reprlib.Repr()
_short.maxlevel, _short.maxdict, _short.maxlist, _short.maxtuple = 2, 4, 4, 4
_short.maxstring = _short.maxother = _short.maxlong = EXCERPT_CHARS


def excerpt(value: Any) -> Any:
    """A short, JSON-safe stand-in for a value the client sent."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[:EXCERPT_CHARS * 4]).decode(errors="replace")
    if isinstance(value, str):
        if len(value) <= EXCERPT_CHARS:
            return value
        return f"{value[:EXCERPT_CHARS]}… ({len(value)} characters)"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN
    if isinstance(value, int) and abs(value) < 10 ** 18:
        return value
    return _short.repr(value)


def _trimmed(error: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "type": error.get("type"),
        "loc": [excerpt(part) for part in error.get("loc", ())][:10],
        "msg": excerpt(str(error.get("msg", ""))),
    }
    if "input" in error:
        out["input"] = excerpt(error["input"])
    if error.get("ctx"):
        out["ctx"] = {str(k): excerpt(v if isinstance(v, (str, int, float)) else str(v))
                      for k, v in error["ctx"].items()}
    return out


def trimmed_errors(errors: List[Dict[str, Any]]) -> Dict[str, Any]:
    body: Dict[str, Any] = {"detail": [_trimmed(e) for e in errors[:MAX_ERRORS]]}
    if len(errors) > MAX_ERRORS:
        body["more_errors"] = len(errors) - MAX_ERRORS
    return body


async def validation_failed(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 with each `input` cut to an excerpt: a 50 MB string that fails a
    check is not sent back whole (FastAPI's own handler returns the input as it came)."""
    return JSONResponse(trimmed_errors(list(exc.errors())), status_code=422)


async def body_too_large(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """The 413 of the body limit, saying what the cap of this route is."""
    cap: Optional[int] = request.scope.get("starlette.max_body_size")
    if cap is None:
        return JSONResponse({"detail": exc.detail}, status_code=413)
    size = f"{cap // MIB} MiB" if cap % MIB == 0 else f"{cap} bytes"
    return JSONResponse({"detail": f"the request body is over {size}, the most "
                                   f"{request.method} {request.url.path} takes"},
                        status_code=413)


def finite_json(value: Any) -> Any:
    """Free-form JSON (config, command args): finite numbers only, nested at most
    JSON_MAX_DEPTH deep. Python's json module reads NaN and Infinity, which PostgreSQL's
    JSON refuses and no browser parses; deep nesting overflows the encoder's stack."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            raise ValueError(f"nested deeper than {JSON_MAX_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


FreeJson = Annotated[Dict[str, Any], AfterValidator(finite_json)]


class RequestBody(BaseModel):
    """Base of every request body: unknown fields refused, floats finite, strings bounded."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=STR_MAX)
