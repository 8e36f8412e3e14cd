"""District bridges (admin): created for named districts, listed, deleted."""

from typing import Annotated, List, Optional

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet_api.api.limits import RequestBody
from fleet_api.broker import bridges
from fleet_api.broker.accounts import valid_bridge_name
from fleet_api.deps import Admin, ServicesDep

router = APIRouter(prefix="/api/v1/bridges", tags=["bridges"])


class BridgeCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "kota-barat", "districts": ["Kota Barat"]}]})

    name: str = Field(min_length=2, max_length=40)
    districts: List[str] = Field(min_length=1, max_length=50)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not valid_bridge_name(value):
            raise ValueError("must be 2-40 characters of a-z, 0-9 and '-'")
        return value

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: List[str]) -> List[str]:
        if any(not 1 <= len(d) <= 100 or not d.isprintable() for d in value):
            raise ValueError("each district is 1-100 printable characters, as registered")
        return value


class BridgePublic(BaseModel):
    name: str
    username: str
    districts: List[str]
    created_by: str
    created_at: Optional[str]


class BridgeCreated(BridgePublic):
    password: str = Field(description="shown once: the district broker's bridge.password")


@router.post("", response_model=BridgeCreated, status_code=201)
def create_bridge(body: BridgeCreate, services: ServicesDep, who: Admin) -> BridgeCreated:
    """A broker account for one district broker's bridge, confined to the boxes of the
    given districts. The password is in this response only."""
    try:
        made = bridges.create(services.engine, services.accounts, who, body.name,
                              body.districts)
    except (bridges.NoAccounts, bridges.BridgeError) as exc:
        raise HTTPException(409, str(exc)) from exc
    return BridgeCreated(**made)


@router.get("", response_model=List[BridgePublic])
def list_bridges(services: ServicesDep, _who: Admin) -> List[BridgePublic]:
    return [BridgePublic(**b) for b in bridges.listing(services.engine)]


@router.delete("/{name}", status_code=204)
def delete_bridge(name: Annotated[str, Path(max_length=40)], services: ServicesDep,
                  who: Admin) -> None:
    try:
        bridges.remove(services.engine, services.accounts, who, name)
    except bridges.NoAccounts as exc:
        raise HTTPException(409, str(exc)) from exc
    except bridges.BridgeError as exc:
        raise HTTPException(404, str(exc)) from exc
