"""Identifier types of the contract, for pydantic models on either side."""

from typing import Annotated

from pydantic import AfterValidator

from simpul_wire.topics import valid_device_id


def _device_id(value: str) -> str:
    if not valid_device_id(value):
        raise ValueError("must be 2-63 characters of a-z, 0-9 and '-'")
    return value


# A device id as topics, usernames and file names take it (simpul_wire.topics' rule).
DeviceId = Annotated[str, AfterValidator(_device_id)]
