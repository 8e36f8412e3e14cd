"""Parse what `tc` reports back, and compare it with what the plan asked for.

Pure functions over tc's output text. Qdiscs and filters come from `tc -j` (JSON).
HTB classes come from `tc -j -s class show`, but iproute2 up to at least 6.1 prints HTB
classes as text even with -j, so the class parser takes either form:

    class htb 1:fffe parent 1:1 prio 0 rate 50Mbit ceil 100Mbit burst 1600b cburst 1600b
     Sent 1234 bytes 10 pkt (dropped 0, overlimits 0 requeues 0)

tc prints rates exactly (it only shortens 100000Kbit to 100Mbit), so planned and read
rates compare for equality.
"""

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from agent.shaper.errors import ShaperError
from agent.shaper.plan import (
    DEFAULT_MINOR,
    FILTER_PRIO,
    HASH_TABLE,
    ClassSpec,
    DeviceState,
    Plan,
)

_UNITS = {"bit": 1, "kbit": 1000, "mbit": 1000**2, "gbit": 1000**3, "tbit": 1000**4}
_CLASS_RE = re.compile(
    r"^class htb (?P<id>[0-9a-f]+:[0-9a-f]+) (?:root|parent (?P<parent>[0-9a-f]+:[0-9a-f]*))"
    r".*? rate (?P<rate>\S+) ceil (?P<ceil>\S+)",
)
_SENT_RE = re.compile(r"^\s*Sent (\d+) bytes (\d+) pkt \(dropped (\d+)")


@dataclass(frozen=True)
class ClassStats:
    spec: ClassSpec
    sent_bytes: int = 0
    sent_packets: int = 0
    dropped: int = 0


def rate_kbit(text: str) -> int:
    """'100Mbit' -> 100000; '33300Kbit' -> 33300; '8bit' -> 0 (rounded down)."""
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]+)", text.strip())
    if not m or m.group(2).lower() not in _UNITS:
        raise ShaperError(f"cannot read tc rate {text!r}")
    bits = float(m.group(1)) * _UNITS[m.group(2).lower()]
    return round(bits) // 1000


def _minor(handle: str) -> int:
    minor = handle.split(":", 1)[1]
    return int(minor, 16) if minor else 0


def _load_json(text: str) -> Optional[List[Dict[str, Any]]]:
    text = text.strip()
    if not text.startswith("["):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShaperError(f"tc printed broken JSON: {exc}") from exc
    return data if isinstance(data, list) else None


def parse_classes(text: str) -> Dict[int, ClassStats]:
    """HTB classes by minor, from `tc [-j] [-s] class show dev X` output."""
    data = _load_json(text)
    out: Dict[int, ClassStats] = {}
    if data is not None:
        for item in data:
            if item.get("class") != "htb":
                continue
            parent = str(item.get("parent", ""))
            spec = ClassSpec(
                _minor(str(item["handle"])),
                _minor(parent) if parent and parent != "root" else 0,
                int(item["rate"]) * 8 // 1000,  # JSON rates are bytes per second
                int(item["ceil"]) * 8 // 1000,
            )
            stats = item.get("stats", {})
            out[spec.minor] = ClassStats(
                spec, int(stats.get("bytes", 0)), int(stats.get("packets", 0)),
                int(stats.get("drops", 0)),
            )  # fmt: skip
        return out
    current: Optional[ClassSpec] = None
    for line in text.splitlines():
        m = _CLASS_RE.match(line)
        if m:
            parent = m.group("parent")
            current = ClassSpec(
                _minor(m.group("id")),
                _minor(parent) if parent else 0,
                rate_kbit(m.group("rate")),
                rate_kbit(m.group("ceil")),
            )
            out[current.minor] = ClassStats(current)
            continue
        s = _SENT_RE.match(line)
        if s and current is not None:
            out[current.minor] = ClassStats(current, int(s.group(1)), int(s.group(2)),
                                            int(s.group(3)))  # fmt: skip
    return out


def parse_qdiscs(text: str) -> Tuple[bool, bool, bool]:
    """(root is htb 1: default fffe, root is htb 1: at all, ingress ffff: present)."""
    data = _load_json(text) or []
    ours = root_htb1 = ingress = False
    for q in data:
        if q.get("kind") == "htb" and q.get("root") and q.get("handle") == "1:":
            root_htb1 = True
            default = str(q.get("options", {}).get("default", ""))
            ours = default.lower() in (f"0x{DEFAULT_MINOR:x}", f"{DEFAULT_MINOR:x}")
        if q.get("kind") == "ingress" and q.get("handle") == "ffff:":
            ingress = True
    return ours, root_htb1, ingress


def parse_client_filters(text: str) -> Tuple[bool, bool, Dict[str, int]]:
    """(hash table present, filter hashing into it present, client address -> class
    minor) from the filters on 1:."""
    data = _load_json(text) or []
    table = linked = False
    clients: Dict[str, int] = {}
    for f in data:
        if f.get("kind") != "u32" or f.get("pref") != FILTER_PRIO:
            continue
        opts = f.get("options") or {}
        if opts.get("fh") == f"{HASH_TABLE:x}:" and opts.get("ht_divisor") == 256:
            table = True
        if opts.get("link") == f"{HASH_TABLE:x}:" and opts.get("hash_mask") == "ff":
            linked = True
        if opts.get("key_ht") == f"{HASH_TABLE:x}" and "flowid" in opts:
            match = opts.get("match") or {}
            if str(match.get("mask")) != "ffffffff":
                continue
            addr = str(ipaddress.IPv4Address(int(str(match["value"]), 16)))
            clients[addr] = _minor(str(opts["flowid"]))
    return table, linked, clients


def parse_mirred(text: str) -> Optional[str]:
    """The device the interface's ingress filter redirects to, if any."""
    for f in _load_json(text) or []:
        for action in (f.get("options") or {}).get("actions", []):
            if action.get("kind") == "mirred" and action.get("mirred_action") == "redirect":
                return str(action.get("to_dev"))
    return None


def device_state(
    qdiscs: str, classes: str, filters: str, ingress_filters: str = "", exists: bool = True
) -> DeviceState:
    if not exists:
        return DeviceState(exists=False)
    ours, root_htb1, ingress = parse_qdiscs(qdiscs)
    table, linked, clients = parse_client_filters(filters)
    return DeviceState(
        exists=True,
        ours=ours,
        root_htb1=root_htb1,
        classes={m: c.spec for m, c in parse_classes(classes).items()} if ours else {},
        clients=clients if ours else {},
        hash_table=table and ours,
        hash_link=linked and ours,
        ingress=ingress,
        mirred_to=parse_mirred(ingress_filters) if ingress else None,
    )


def _diff_classes(label: str, want: Dict[int, ClassSpec], got: Dict[int, ClassSpec]) -> List[str]:
    out = []
    for minor in sorted(set(want) | set(got)):
        w, g = want.get(minor), got.get(minor)
        if w == g:
            continue
        if g is None:
            out.append(f"{label}: class 1:{minor:x} missing")
        elif w is None:
            out.append(f"{label}: unexpected class 1:{minor:x}")
        else:
            out.append(
                f"{label}: class 1:{minor:x} is rate {g.rate_kbit}kbit ceil {g.ceil_kbit}kbit, "
                f"planned rate {w.rate_kbit}kbit ceil {w.ceil_kbit}kbit"
            )
    return out


def compare(plan: Plan, down: DeviceState, up: DeviceState) -> List[str]:
    """Every way the read-back state differs from the plan; empty means verified."""
    problems: List[str] = []
    for label, state, tree in (
        (plan.interface, down, plan.down),
        (plan.ifb, up, plan.up),
    ):
        if not state.exists:
            problems.append(f"{label}: device missing")
            continue
        if not state.ours:
            problems.append(f"{label}: root qdisc is not htb 1: default {DEFAULT_MINOR:x}")
            continue
        problems += _diff_classes(label, tree, state.classes)
        if plan.clients and not (state.hash_table and state.hash_link):
            problems.append(f"{label}: per-client hash table or its link filter missing")
        if state.clients != plan.clients:
            problems.append(
                f"{label}: per-client filters {sorted(state.clients.items())} "
                f"differ from planned {sorted(plan.clients.items())}"
            )
    if not down.ingress:
        problems.append(f"{plan.interface}: no ingress qdisc")
    elif down.mirred_to != plan.ifb:
        problems.append(f"{plan.interface}: ingress redirects to {down.mirred_to}, not {plan.ifb}")
    return problems
