"""Administration: the audit log and API tokens."""

from typing import Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from fleet_api.api.limits import RequestBody
from fleet_api.audit import record
from fleet_api.auth import create_token, hash_token
from fleet_api.db import audit, iso, tokens
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
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(audit.c.target == target)
    if action is not None:
        query = query.where(audit.c.action == action)
    with services.engine.connect() as conn:
        rows = conn.execute(query).fetchall()
    data = [AuditEntry(id=r.id, at=iso(r.at), actor=r.actor, action=r.action, target=r.target,
                       detail=r.detail or {}) for r in rows]
    return AuditList(data=data, count=len(data))


@router.get("/tokens", response_model=List[TokenView])
def list_tokens(services: ServicesDep, _who: Admin) -> List[TokenView]:
    with services.engine.connect() as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.id)).fetchall()
    return [TokenView(id=r.id, role=r.role, name=r.name, created_at=iso(r.created_at),
                      revoked=r.revoked) for r in rows]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def add_token(body: TokenCreate, services: ServicesDep, who: Admin) -> TokenCreated:
    token = create_token(services.engine, body.role, body.name)
    with services.engine.begin() as conn:
        row = conn.execute(select(tokens.c.id)
                           .where(tokens.c.token_hash == hash_token(token))).one()
        record(conn, who, "token.create", f"token:{row.id}", {"role": body.role,
                                                             "name": body.name})
    return TokenCreated(id=row.id, role=body.role, name=body.name, token=token)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: RowId, services: ServicesDep, who: Admin) -> None:
    with services.engine.begin() as conn:
        done = conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked=True))
        if not done.rowcount:
            raise HTTPException(404, f"no token {token_id}")
        record(conn, who, "token.revoke", f"token:{token_id}")
