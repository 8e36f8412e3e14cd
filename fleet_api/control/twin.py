"""The device twin: desired config (a group template merged with the device's own part),
its version, secrets that never leave the fleet through the API, and publishing.

A device's effective desired config is `merge(template of its group at group_rev,
device.desired)`; the device's own part wins key by key. Every change to it bumps
`desired_version` and publishes a retained DesiredConfig; the worker republishes any
device whose `published_version` is behind (the broker was down).
"""

import copy
import logging
import re
from typing import Any, Dict, Optional

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from fleet_api.db import devices, group_templates, tiers
from fleet_api.errors import FleetError
from simpul_wire.config import parse_managed
from simpul_wire.errors import ConfigError

log = logging.getLogger("simpul.twin")

REDACTED = "********"
_SECRET = re.compile(r"(password|passwd|secret|token|api_?key|credential)", re.I)


class TwinError(FleetError, ValueError):
    """A desired config the box would refuse; the message names the field."""


class VersionConflict(FleetError):
    """The writer read an older version than the stored one."""

    def __init__(self, current: int) -> None:
        super().__init__(f"version is now {current}")
        self.current = current


def is_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


def redact(value: Any) -> Any:
    """A copy with every secret-named key's value replaced by REDACTED."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret(str(k)) and v is not None else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def keep_secrets(new: Any, old: Any) -> Any:
    """Where the writer sent REDACTED back, keep the stored secret (read-modify-write).

    Lists of collectors are matched by their `name`, other lists by position."""
    if isinstance(new, dict):
        olds = old if isinstance(old, dict) else {}
        out = {}
        for key, value in new.items():
            if value == REDACTED and is_secret(str(key)):
                if key not in olds:
                    raise TwinError(f"{key}: {REDACTED} stands for a stored secret, and "
                                    "there is none; send the value")
                out[key] = olds[key]
            else:
                out[key] = keep_secrets(value, olds.get(key))
        return out
    if isinstance(new, list):
        olds_list = old if isinstance(old, list) else []
        by_name = {o.get("name"): o for o in olds_list if isinstance(o, dict)}
        result = []
        for i, item in enumerate(new):
            if isinstance(item, dict) and item.get("name") in by_name:
                prior = by_name[item.get("name")]
            else:
                prior = olds_list[i] if i < len(olds_list) else {}
            result.append(keep_secrets(item, prior))
        return result
    return new


def merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """Deep merge of dicts; lists and scalars of `over` replace those of `base`."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate(config: Dict[str, Any]) -> None:
    """Refuse what the box would refuse (the contract's ManagedConfig)."""
    try:
        parse_managed(config)
    except ConfigError as exc:
        raise TwinError(str(exc)) from exc


def template(conn: Connection, group: Optional[str], rev: Optional[int]) -> Dict[str, Any]:
    if group is None or rev is None:
        return {}
    row = conn.execute(select(group_templates.c.template).where(
        group_templates.c.group_name == group, group_templates.c.rev == rev)).first()
    return dict(row[0]) if row is not None else {}


def effective(conn: Connection, row: Any, own: Optional[Dict[str, Any]] = None,
              group: Any = ..., rev: Any = ...) -> Dict[str, Any]:
    """The config the box should run; `own`/`group`/`rev` override the stored ones."""
    g = row.group_name if group is ... else group
    r = row.group_rev if rev is ... else rev
    return merge(template(conn, g, r), dict(row.desired or {}) if own is None else own)


def tier_of(config: Dict[str, Any]) -> Optional[float]:
    tier = config.get("tier")
    if isinstance(tier, dict) and tier.get("down_mbps") is not None:
        return float(tier["down_mbps"])
    return None


def tier_section(conn: Connection, mbps: float) -> Dict[str, Any]:
    row = conn.execute(select(tiers).where(tiers.c.mbps == mbps)).first()
    if row is None:
        known = [r[0] for r in conn.execute(select(tiers.c.mbps).order_by(tiers.c.mbps))]
        raise LookupError(f"no tier of {mbps:g} Mbps in the catalogue; known: "
                          f"{', '.join(f'{k:g}' for k in known)}")
    section = {"down_mbps": row.down_mbps, "up_mbps": row.up_mbps}
    if row.per_client_mbps is not None:
        section["per_client_mbps"] = row.per_client_mbps
    return section


def write(conn: Connection, row: Any, read_version: int, own: Dict[str, Any],
          group: Any = ..., rev: Any = ...) -> int:
    """Validate and store a new twin for `row`; return the new version.

    The UPDATE is conditional on the version the writer read, so of two racing
    writers exactly one wins and the other gets VersionConflict."""
    config = effective(conn, row, own, group, rev)
    validate(config)
    values: Dict[str, Any] = {"desired": own, "desired_version": read_version + 1,
                              "tier_mbps": tier_of(config)}
    if group is not ...:
        values["group_name"] = group
    if rev is not ...:
        values["group_rev"] = rev
    done = conn.execute(update(devices).where(devices.c.device_id == row.device_id,
                                              devices.c.desired_version == read_version)
                        .values(**values))
    if done.rowcount != 1:
        current = conn.execute(select(devices.c.desired_version)
                               .where(devices.c.device_id == row.device_id)).scalar_one()
        raise VersionConflict(int(current))
    return read_version + 1
