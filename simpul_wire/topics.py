"""Topic builders and parsers: every topic of a device lives under simpul/v1/{device_id}/."""

import re
from typing import Optional, Tuple

PREFIX = "simpul/v1"

# Leaves a device may use; `cmd/{id}` and `cmd/{id}/result` carry a command id.
LEAVES = (
    "state",
    "telemetry",
    "health",
    "config/reported",
    "config/desired",
    "cmd",
    "cmd/result",
    "claim",
    "ack",
)

# Lower-case letters, digits and dashes: safe as an MQTT topic level, a username,
# a client id and a file name. No '/', '+', '#' can ever reach a topic.
_DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_COMMAND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TopicError(ValueError):
    """A topic or device id that is not part of the contract."""


def valid_device_id(device_id: str) -> bool:
    return bool(_DEVICE_ID.match(device_id))


def _check_device(device_id: str) -> str:
    if not valid_device_id(device_id):
        raise TopicError(
            f"device id {device_id!r} must be 2-63 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return device_id


def topic(device_id: str, leaf: str, command_id: Optional[str] = None) -> str:
    """Build a topic: topic("park-01", "telemetry"), topic("park-01", "cmd", "c1")."""
    _check_device(device_id)
    if leaf in ("cmd", "cmd/result"):
        if command_id is None or not _COMMAND_ID.match(command_id):
            raise TopicError(f"leaf {leaf!r} needs a command id of A-Z, a-z, 0-9, '_', '-'")
        suffix = "/result" if leaf == "cmd/result" else ""
        return f"{PREFIX}/{device_id}/cmd/{command_id}{suffix}"
    if leaf not in LEAVES:
        raise TopicError(f"unknown leaf {leaf!r}; expected one of {', '.join(LEAVES)}")
    return f"{PREFIX}/{device_id}/{leaf}"


def subscription(leaf: str, device_id: str = "+") -> str:
    """A subscription filter for one leaf, for one device or all ('+')."""
    if leaf == "cmd":
        return f"{PREFIX}/{device_id}/cmd/+"
    if leaf == "cmd/result":
        return f"{PREFIX}/{device_id}/cmd/+/result"
    return f"{PREFIX}/{device_id}/{leaf}"


def parse_topic(name: str) -> Tuple[str, str, Optional[str]]:
    """Split a topic into (device_id, leaf, command_id); raise TopicError if foreign."""
    parts = name.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"topic {name!r} is not under {PREFIX}/{{device_id}}/")
    device_id = _check_device(parts[2])
    rest = parts[3:]
    if rest[0] == "cmd":
        if len(rest) == 2 and _COMMAND_ID.match(rest[1]):
            return device_id, "cmd", rest[1]
        if len(rest) == 3 and rest[2] == "result" and _COMMAND_ID.match(rest[1]):
            return device_id, "cmd/result", rest[1]
        raise TopicError(f"topic {name!r} has a malformed command part")
    leaf = "/".join(rest)
    if leaf not in LEAVES or leaf.startswith("cmd"):
        raise TopicError(f"topic {name!r} has unknown leaf {leaf!r}")
    return device_id, leaf, None
