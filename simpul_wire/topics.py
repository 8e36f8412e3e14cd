"""Topic builders and parsers: every topic of a device lives under simpul/v1/{device_id}/."""

import re
from typing import Dict, NamedTuple, Optional, Tuple

from simpul_wire.models import MAX_PAYLOAD_BYTES

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



class LeafRule(NamedTuple):
    """Who writes a leaf, whether the contract retains it, and its largest payload.
    The broker enforces exactly this table (broker_config/plugin/simpul_acl.c gets it
    rendered as plugin_opt_leaves), so a box cannot retain or flood where it should not."""

    writer: str  # "box" or "fleet"
    retained: bool
    max_bytes: int


LEAF_RULES: Dict[str, LeafRule] = {
    "state": LeafRule("box", True, 4 * 1024),
    "telemetry": LeafRule("box", False, MAX_PAYLOAD_BYTES),
    "health": LeafRule("box", False, MAX_PAYLOAD_BYTES),
    "config/reported": LeafRule("box", True, 128 * 1024),
    "config/desired": LeafRule("fleet", True, MAX_PAYLOAD_BYTES),
    "cmd": LeafRule("fleet", False, MAX_PAYLOAD_BYTES),
    "cmd/result": LeafRule("box", False, MAX_PAYLOAD_BYTES),
    "claim": LeafRule("box", False, 4 * 1024),
    "ack": LeafRule("fleet", False, MAX_PAYLOAD_BYTES),
}

# Lower-case letters, digits and dashes: safe as an MQTT topic level, a username,
# a client id and a file name. No '/', '+', '#' can ever reach a topic.
_DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_COMMAND_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TopicError(ValueError):
    """A topic or device id that is not part of the contract."""


def valid_device_id(device_id: str) -> bool:
    return bool(_DEVICE_ID.match(device_id))


# The fleet's own broker accounts and client ids carry a character no device id can
# have, so no registration can ever take one (docs/security.md, "Names").
FLEET_NAME_PREFIX = "simpul_"


def fleet_name(name: str) -> str:
    """A broker account or client id of the fleet's own: simpul_<name>."""
    return f"{FLEET_NAME_PREFIX}{name}"


# Before the names above, the fleet's accounts and client ids were simpul-fleet,
# simpul-bridge, simpul-ingest-N: a broker's stored sessions may still hold them, so a
# device may never be registered under that form.
_LEGACY_FLEET_FORM = "simpul-"


def reserved_device_id(device_id: str) -> Optional[str]:
    """Why `device_id` may not be registered, or None when it may."""
    if device_id == "simpul" or device_id.startswith(_LEGACY_FLEET_FORM):
        return ("ids starting with 'simpul-' are reserved for the fleet's own broker "
                "accounts and client ids")
    return None


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
