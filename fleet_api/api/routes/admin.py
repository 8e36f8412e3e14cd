"""Administration: the audit log and API tokens."""

from typing import Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from fleet_api import audit as audit_log
from fleet_api import tokens as api_tokens
from fleet_api.api.limits import RequestBody
from fleet_api.deps import Admin, RowId, ServicesDep

router = APIRouter(prefix="/api/v1", tags=["admin"])


class AuditEntry(BaseModel):
    id: int
    at: Optional[str]
    actor: str
    action: str
    target: str
    detail: Dict[str, Any]


class AuditList(BaseModel):
    data: List[AuditEntry]
    count: int


class TokenCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"role": "viewer", "name": "wall screen BPBD"}]})

    role: Literal["viewer", "technician", "operator", "admin"]
    name: str = Field(default="", max_length=100)


class TokenCreated(BaseModel):
    id: int
    role: str
    name: str
    token: str = Field(description="shown once; only its hash is stored")


class TokenView(BaseModel):
    id: int
    role: str
    name: str
    created_at: Optional[str]
    revoked: bool


@router.get("/audit", response_model=AuditList)
def list_audit(services: ServicesDep, _who: Admin,
               target: Optional[str] = Query(None, max_length=200),
               action: Optional[str] = Query(None, max_length=64),
               limit: int = Query(200, ge=1, le=5000)
               ) -> AuditList:
    """Every change: who, what, when; newest first. Secrets are redacted."""
    data = [AuditEntry(**e) for e in audit_log.listing(services.engine, target, action, limit)]
    return AuditList(data=data, count=len(data))


@router.get("/tokens", response_model=List[TokenView])
def list_tokens(services: ServicesDep, _who: Admin) -> List[TokenView]:
    return [TokenView(**t) for t in api_tokens.listing(services.engine)]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def add_token(body: TokenCreate, services: ServicesDep, who: Admin) -> TokenCreated:
    return TokenCreated(**api_tokens.issue(services.engine, who, body.role, body.name))


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: RowId, services: ServicesDep, who: Admin) -> None:
    try:
        api_tokens.revoke(services.engine, who, token_id)
    except api_tokens.NoToken as exc:
        raise HTTPException(404, str(exc)) from exc
