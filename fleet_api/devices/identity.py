"""Device identity on the fleet side: cloned SD cards and credential rotation (pure).

Cloned card. Two boxes from one image share a device id and its password. The broker
lets one session per client id live (use_username_as_clientid), so they take the
session from each other in turn, and each reconnect publishes a birth with that
process's random `boot_id`. One box restarting makes A, B, C: a boot id never comes
back. Two boxes make A, B, A, B. `detect_clones` finds boot ids that come back after
another one, within a window. Retained births (replayed to a subscriber that just
connected) prove nothing and are ignored.

Rotation without a lockout. Mosquitto's password file holds one hash per user (a
second line for the same user replaces the first), so "two valid hashes" lives in the
database and on the box, not in the broker:

    idle ──begin──► staging    the DB keeps the old hash and the new one (pending);
                               the broker still has the old; the box gets the new
                               password in `rotate_credentials` and writes it beside
                               the old one (agent.credentials)
    staging ──staged──► switched   the box holds both: the broker gets the new hash
    switched ──online──► done      the box connected after the switch, so with the new
                                   password: the old hash is dropped
    staging ──timeout──► idle      no answer: the pending hash is dropped (the box may
                                   hold a pending password the broker never takes; it
                                   keeps using the old one, and tries the new one now
                                   and then, at most hourly)
    switched ──timeout──► idle     the box did not come back: the broker gets the old
                                   hash again (the box still has it); an alert, and the
                                   operator may retry

`step` returns the new rotation and the actions for the caller (write the broker's
password file, drop a hash, raise an alert); it does no I/O.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Dict, Iterable, List, Optional, Tuple

# -- cloned cards ---------------------------------------------------------------------


@dataclass(frozen=True)
class Birth:
    device_id: str
    boot_id: str
    at: datetime  # the fleet's receive time
    retained: bool = False


@dataclass(frozen=True)
class CloneSuspect:
    device_id: str
    boot_ids: Tuple[str, ...]  # the boot ids that kept coming back
    returns: int  # births whose boot id had been seen before, after another one
    first_at: datetime
    last_at: datetime


def detect_clones(births: Iterable[Birth], window: timedelta = timedelta(minutes=10),
                  min_returns: int = 2) -> List[CloneSuspect]:
    """Devices whose births alternate between boot ids within `window`."""
    by_device: Dict[str, List[Birth]] = {}
    for birth in births:
        if not birth.retained and birth.boot_id:
            by_device.setdefault(birth.device_id, []).append(birth)
    suspects = []
    for device_id, seq in sorted(by_device.items()):
        seq.sort(key=lambda b: b.at)
        best: Optional[CloneSuspect] = None
        start = 0
        for end in range(len(seq)):
            while seq[end].at - seq[start].at > window:
                start += 1
            returns, seen = 0, set()
            previous = None
            for birth in seq[start:end + 1]:
                if birth.boot_id != previous and birth.boot_id in seen:
                    returns += 1
                seen.add(birth.boot_id)
                previous = birth.boot_id
            if returns >= min_returns and (best is None or returns > best.returns):
                best = CloneSuspect(device_id, tuple(sorted(seen)), returns, seq[start].at,
                                    seq[end].at)
        if best is not None:
            suspects.append(best)
    return suspects


# -- credential rotation --------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    device_id: str
    state: str = "idle"  # idle | staging | switched | done
    current_hash: str = ""  # what the box is known to hold
    pending_hash: Optional[str] = None  # the new one, while a rotation runs
    broker_hash: str = ""  # what the broker's password file has for this device
    rotation_id: Optional[str] = None
    since: Optional[datetime] = None


STAGE_TIMEOUT = timedelta(minutes=30)
SWITCH_TIMEOUT = timedelta(minutes=30)


def begin(rot: Rotation, new_hash: str, rotation_id: str, now: datetime
          ) -> Tuple[Rotation, List[str]]:
    if rot.state in ("staging", "switched"):
        return rot, [f"refuse: rotation {rot.rotation_id} is still {rot.state}"]
    nxt = replace(rot, state="staging", pending_hash=new_hash, rotation_id=rotation_id,
                  since=now, broker_hash=rot.current_hash)
    return nxt, ["store", "send_rotate_command"]


def step(rot: Rotation, event: str, now: datetime, rotation_id: Optional[str] = None,
         boot_after: Optional[datetime] = None) -> Tuple[Rotation, List[str]]:
    """Advance on an event: "staged" (the command's result), "online" (a birth, with
    `boot_after` its receive time), "tick" (timeouts). Returns (rotation, actions)."""
    if rotation_id is not None and rotation_id != rot.rotation_id:
        return rot, []  # a late answer about an older rotation
    if rot.state == "staging":
        if event == "staged":
            nxt = replace(rot, state="switched", broker_hash=rot.pending_hash or "", since=now)
            return nxt, ["store", "write_broker_hash"]
        if event == "tick" and rot.since is not None and now - rot.since > STAGE_TIMEOUT:
            nxt = replace(rot, state="idle", pending_hash=None, rotation_id=None, since=now)
            return nxt, ["store", "alert: rotation not staged in time; old password kept"]
    elif rot.state == "switched":
        if event == "online" and boot_after is not None and rot.since is not None \
                and boot_after > rot.since:
            nxt = replace(rot, state="done", current_hash=rot.pending_hash or "",
                          pending_hash=None, since=now)
            return nxt, ["store", "drop_old_hash"]
        if event == "tick" and rot.since is not None and now - rot.since > SWITCH_TIMEOUT:
            nxt = replace(rot, state="idle", broker_hash=rot.current_hash, pending_hash=None,
                          rotation_id=None, since=now)
            return nxt, ["store", "write_broker_hash",
                         "alert: box did not come back with the new password; reverted"]
    return rot, []
