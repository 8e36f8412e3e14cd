"""Request and response models that more than one route module uses (a route never
imports another route's models)."""

from typing import Annotated, List, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet_api.api.limits import RequestBody
from simpul_wire.ids import DeviceId as WireDeviceId  # the body's; deps.DeviceId is a path's
from simpul_wire.topics import reserved_device_id

Kind = Literal["wifi", "cctv", "sensor"]
# A device carries at most 32 tags of at most 64 characters: 2 KiB, not megabytes.
Tag = Annotated[str, Field(min_length=1, max_length=64)]
MAX_TAGS = 32


class DeviceCreate(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "device_id": "taman-kota-01", "site": "Taman Kota", "kind": "wifi",
        "district": "Kota Barat", "lat": -6.2, "lon": 106.8, "tags": ["park"]}]})

    device_id: WireDeviceId = Field(min_length=2, max_length=63)
    site: str = Field(min_length=1, max_length=200)
    kind: Kind
    district: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    tags: List[Tag] = Field(default_factory=list, max_length=MAX_TAGS)

    @field_validator("device_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        reserved = reserved_device_id(value)
        if reserved:
            raise ValueError(reserved)
        return value


class MqttCredentials(BaseModel):
    url: str
    username: str
    password: str
    client_id: str
