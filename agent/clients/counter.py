"""Distinct-client counting over sliding windows, on keyed identities only.

Observations come in as (kind, mac, ts). The MAC is turned into a keyed identity at
once (agent/clients/identity.py) and dropped; what is kept is identity -> times, and for
probes the one bit saying the address was locally administered. Entries older than the
longest window are forgotten.

- `connected`: clients associated, leased or seen on the LAN (ARP, DHCP, state tools).
- `nearby`: devices sending 802.11 probe requests.
- `nearby_randomized`: the part of `nearby` with locally administered (randomized)
  addresses. A phone rotating its address is counted once per address: an over-count,
  kept apart so that it is never silently mixed into `nearby` without a label.
- Dwell: sessions of connected clients; a gap longer than `idle_s` ends a session.
"""

import collections
from typing import Deque, Dict, List, NamedTuple, Optional, Set, Tuple

from agent.clients.identity import Keyring
from agent.clients.mac import is_locally_administered, is_unicast

CONNECTED = 1  # a client on the LAN: ARP sender, DHCP client, state-tool station
NEARBY = 2  # an 802.11 probe request's transmitter
INFRA = 3  # the hotspot's own side (DHCP server, gateway): never counted

WINDOWS: Dict[str, float] = {"1m": 60.0, "15m": 900.0, "1h": 3600.0}
# Upper bounds in seconds of the dwell-time histogram buckets; the last is open.
DWELL_BUCKETS: List[Tuple[str, float]] = [
    ("lt_1m", 60.0),
    ("1m_5m", 300.0),
    ("5m_15m", 900.0),
    ("15m_1h", 3600.0),
    ("1h_4h", 14400.0),
    ("ge_4h", float("inf")),
]


class Counts(NamedTuple):
    connected: int
    connected_randomized: int
    nearby: int
    nearby_randomized: int


def dwell_bucket(seconds: float) -> str:
    for label, upper in DWELL_BUCKETS:
        if seconds < upper:
            return label
    return DWELL_BUCKETS[-1][0]  # pragma: no cover - inf bound catches all


class ClientCounter:
    """Sliding-window counts; `keep_totals` also counts over the whole run (capture files)."""

    def __init__(
        self,
        keyring: Optional[Keyring] = None,
        idle_s: float = 300.0,
        keep_totals: bool = False,
    ) -> None:
        self.keyring = keyring or Keyring()
        self._rotations = self.keyring.rotations
        self.idle_s = idle_s
        self.horizon = max(WINDOWS.values())
        # identity -> [session start, last seen, randomized]
        self._connected: Dict[bytes, List[float]] = {}
        # identity -> [last seen, randomized]
        self._nearby: Dict[bytes, List[float]] = {}
        self._infra: Set[bytes] = set()
        self._closed: Deque[Tuple[float, float]] = collections.deque()  # (end, duration)
        self._totals: Optional[Dict[int, Dict[bytes, bool]]] = (
            {CONNECTED: {}, NEARBY: {}} if keep_totals else None
        )
        self.last_ts = 0.0
        self.observations = 0

    def see(self, kind: int, mac: bytes, ts: float, connected_s: Optional[float] = None) -> None:
        """One observation. `connected_s`: how long a state tool says it is associated."""
        if not is_unicast(mac):
            return
        self.keyring.check_rotation()
        if self.keyring.rotations != self._rotations:  # maybe rotated by another counter
            self._rotations = self.keyring.rotations
            self.forget()
        ident = self.keyring.ident(mac)
        self.observations += 1
        if ts > self.last_ts:
            self.last_ts = ts
        if kind == INFRA:
            self._infra.add(ident)
            return
        local = is_locally_administered(mac)
        if self._totals is not None:
            self._totals[kind][ident] = local
        if kind == NEARBY:
            entry = self._nearby.get(ident)
            if entry is None:
                self._nearby[ident] = [ts, local]
            elif ts > entry[0]:
                entry[0] = ts
            return
        session = self._connected.get(ident)
        start = ts - connected_s if connected_s is not None else ts
        if session is None:
            self._connected[ident] = [start, ts, local]
        elif ts - session[1] > self.idle_s:
            self._closed.append((session[1], session[1] - session[0]))
            self._connected[ident] = [start, ts, local]
        elif ts > session[1]:
            session[1] = ts
            session[0] = min(session[0], start)

    def forget(self) -> None:
        """Drop every identity (the key rotated: old identities can never match again)."""
        self._connected.clear()
        self._nearby.clear()
        self._infra.clear()
        self._closed.clear()

    def prune(self, now: float) -> None:
        """Forget what is older than the longest window."""
        cutoff = now - self.horizon
        for ident in [i for i, s in self._connected.items() if s[1] < cutoff]:
            session = self._connected.pop(ident)
            self._closed.append((session[1], session[1] - session[0]))
        for ident in [i for i, e in self._nearby.items() if e[0] < cutoff]:
            del self._nearby[ident]
        while self._closed and self._closed[0][0] < cutoff:
            self._closed.popleft()

    def counts(self, now: float, window: float) -> Counts:
        cutoff = now - window
        conn = [s[2] for i, s in self._connected.items() if s[1] >= cutoff and i not in self._infra]
        near = [e[1] for i, e in self._nearby.items() if e[0] >= cutoff and i not in self._infra]
        return Counts(len(conn), sum(1 for x in conn if x), len(near), sum(1 for x in near if x))

    def totals(self) -> Counts:
        """Distinct identities over the whole run (only with keep_totals)."""
        if self._totals is None:
            raise ValueError("counter made without keep_totals")
        conn = [v for i, v in self._totals[CONNECTED].items() if i not in self._infra]
        near = [v for i, v in self._totals[NEARBY].items() if i not in self._infra]
        return Counts(len(conn), sum(conn), len(near), sum(near))

    def dwell_histogram(self, now: float) -> Dict[str, int]:
        """Sessions active in the last hour: ended ones by length, open ones by length so far."""
        hist = {label: 0 for label, _ in DWELL_BUCKETS}
        cutoff = now - self.horizon
        for end, duration in self._closed:
            if end >= cutoff:
                hist[dwell_bucket(duration)] += 1
        for ident, session in self._connected.items():
            if session[1] >= cutoff and ident not in self._infra:
                hist[dwell_bucket(session[1] - session[0])] += 1
        return hist

    def metrics(self, now: float) -> Dict[str, float]:
        """Flat metric names for the accumulator: connected_1m, nearby_15m, dwell_lt_1m..."""
        out: Dict[str, float] = {}
        for label, seconds in WINDOWS.items():
            c = self.counts(now, seconds)
            out[f"connected_{label}"] = c.connected
            out[f"connected_randomized_{label}"] = c.connected_randomized
            out[f"nearby_{label}"] = c.nearby
            out[f"nearby_randomized_{label}"] = c.nearby_randomized
        for label, value in self.dwell_histogram(now).items():
            out[f"dwell_{label}"] = value
        return out
