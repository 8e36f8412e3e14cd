"""The last step at the pole: wait until the box's first telemetry reaches the fleet.

Each poll reads the device and its records and names the stage the box has reached:

    not registered  ->  never connected  ->  connected, no telemetry yet
                    ->  (offline-provisioned) sending, not claimed yet  ->  online

A timeout names the stage it stopped at and what to look at. A laptop that loses the
fleet mid-wait keeps polling ("fleet unreachable") until the timeout.
"""

import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

from simpul_field.provision.errors import NotOnlineError, UnreachableError
from simpul_field.provision.fleet import FleetClient

STREAMS = ("telemetry", "health", "any")

ADVICE = {
    "not registered": "the fleet does not know this device id",
    "never connected": "the fleet has not heard from the box: check its power, network "
                       "and broker address, and that the card holds this bundle",
    "connected, no telemetry yet": "the box reached the broker but no records were "
                                   "stored: check its collectors and clock in its log",
    "sending, not claimed yet": "the box sends records but its claim has not been "
                                "recorded: check the claim code in its config",
    "fleet unreachable": "this laptop cannot reach the fleet: check its network, and "
                         "run `simpul-field provision check` again later",
}


@dataclass
class Stage:
    name: str
    records: int = 0

    @property
    def online(self) -> bool:
        return self.name == "online"


def stage(client: FleetClient, device_id: str, stream: str = "any",
          claim_code: Optional[str] = None) -> Stage:
    dev = client.device(device_id)
    if dev is None:
        return Stage("not registered")
    streams = ("telemetry", "health") if stream == "any" else (stream,)
    count = sum(client.records(device_id, s) for s in streams)
    if count == 0:
        heard = dev.get("last_seen") is not None or dev.get("state") == "online"
        return Stage("connected, no telemetry yet" if heard else "never connected")
    if claim_code:
        claim = client.claim(claim_code)
        if claim is not None and not claim.get("claimed"):
            return Stage("sending, not claimed yet", count)
    return Stage("online", count)


def wait_online(client: FleetClient, device_id: str, timeout: float, stream: str = "any",
                claim_code: Optional[str] = None, interval: float = 1.0,
                out: TextIO = sys.stderr, clock: Callable[[], float] = time.monotonic
                ) -> Stage:
    """Poll until online; raise NotOnlineError naming the last stage on timeout."""
    started = clock()
    tty = out.isatty()
    last = ""
    while True:
        try:
            now = stage(client, device_id, stream, claim_code)
        except UnreachableError:
            now = Stage("fleet unreachable")  # a poor link at the site: keep trying
        waited = clock() - started
        if tty:
            out.write(f"\r\033[Kwaiting for {device_id}: {now.name}  "
                      f"[{waited:4.0f}s / {timeout:.0f}s]")
        elif now.name != last:
            out.write(f"waiting for {device_id}: {now.name} ({waited:.0f}s)\n")
        out.flush()
        last = now.name
        if now.online:
            if tty:
                out.write("\n")
            return now
        if waited >= timeout:
            if tty:
                out.write("\n")
            raise NotOnlineError(f"{device_id} is not online after {timeout:.0f}s: "
                                 f"{now.name}: {ADVICE.get(now.name, '')}")
        time.sleep(interval)
