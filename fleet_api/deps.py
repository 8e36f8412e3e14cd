"""FastAPI dependencies: the services object and role checks."""

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Callable, Optional

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator
from sqlalchemy.engine import Engine

from fleet_api.auth import COOKIE, FailureLimiter, Principal, lookup
from fleet_api.broker.accounts import AccountSync
from fleet_api.broker.publisher import Publisher
from fleet_api.devices.revoke import BrokerSide
from fleet_api.settings import Settings


@dataclass
class Services:
    engine: Engine
    settings: Settings
    accounts: Optional[AccountSync] = None
    publisher: Optional[Publisher] = None
    limiter: FailureLimiter = field(default_factory=FailureLimiter)

    def broker_side(self) -> BrokerSide:
        return BrokerSide(self.accounts, self.publisher, self.settings)


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


# Declares the scheme in the OpenAPI document (components.securitySchemes, and `security`
# on every operation that needs a principal). It refuses nothing itself: `_principal`
# reads the header, or the dashboard's session cookie, and answers 401 as before.
BEARER = HTTPBearer(auto_error=False, description="An API token in `Authorization: Bearer "
                    "<token>` (`simpul-fleet token create`); browsers signed in at "
                    "`/login` send the session cookie instead.")


def _principal(request: Request, services: ServicesDep,
               _declared: Annotated[Optional[HTTPAuthorizationCredentials], Depends(BEARER)]
               ) -> Principal:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    token = token or request.cookies.get(COOKIE, "")
    if not token:
        raise HTTPException(401, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    client = request.client.host if request.client else "?"
    wait = services.limiter.blocked_for(client)
    if wait:
        raise HTTPException(429, "too many failed sign-ins from this address; wait",
                            headers={"Retry-After": str(int(wait) + 1)})
    principal = lookup(services.engine, token)
    if principal is None:
        services.limiter.failed(client)
        raise HTTPException(401, "unknown or revoked token",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(role: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(403, f"the {principal.role} role may not do this; "
                                     f"it needs {role}")
        return principal

    return check


DeviceId = Annotated[str, Path(max_length=63, examples=["taman-kota-01"])]
CommandId = Annotated[str, Path(max_length=64, examples=["c1f2e3d4c5b6a7980"])]
GroupName = Annotated[str, Path(max_length=100, examples=["kota-barat"])]
# Row ids in paths: bounded to what every engine's INTEGER holds.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]

Viewer = Annotated[Principal, Depends(require("viewer"))]
Technician = Annotated[Principal, Depends(require("technician"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]

# Offsets: far below the 64 bits every engine's OFFSET takes; no page is that deep.
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

# Dates in queries: what the database holds and Python can convert. Year 1 with a
# positive offset or 9999 with a negative one has no UTC form at all.
MIN_YEAR, MAX_YEAR = 1970, 9998


def _storable(value: datetime) -> datetime:
    try:
        utc = value.astimezone(timezone.utc) if value.tzinfo is not None else value
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise ValueError(f"dates must fall in the years {MIN_YEAR}-{MAX_YEAR} once "
                         "converted to UTC")
    return utc


StorableTime = Annotated[datetime, AfterValidator(_storable)]
