"""One Modbus register entry: the schema a `modbus` collector's inline `registers` and a
register map file share. Decoding and framing are firmware_bridge.modbus_map's."""

from typing import Dict, Literal

from pydantic import BaseModel, ConfigDict, Field

from simpul_wire.config.base import NAME

DataType = Literal["uint16", "int16", "uint32", "int32", "float32"]
# 16-bit registers each data type spans.
WIDTH: Dict[str, int] = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2}


class Register(BaseModel):
    # `register` in TOML; `number` here, since BaseModel already has a `register`.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME)
    address: int = Field(default=1, ge=1, le=247)
    number: int = Field(alias="register", ge=0, le=0xFFFF)
    function: Literal["holding", "input"] = "holding"
    type: DataType = "uint16"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""

    @property
    def count(self) -> int:
        return WIDTH[self.type]
