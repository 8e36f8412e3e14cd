"""The applier: read tc state, plan, run the plan, read back and verify."""

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from agent.shaper.errors import MissingFeature, NoSuchInterface, NotPermitted, ShaperError, classify
from agent.shaper.plan import (
    ROOT_MINOR,
    Command,
    DeviceState,
    Plan,
    Tier,
    ifb_name,
    plan,
    teardown,
    with_netns,
)
from agent.shaper.readback import compare, device_state, parse_classes

CAP_NET_ADMIN = 12
# Where the agent's unit keeps runtime files; the CLI run by hand sees the same place.
LOCK_DIR = "/run/simpul"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


_BATCH_FAILED = re.compile(r"^Command failed -:(\d+)\s*$", re.MULTILINE)


def run_command(cmd: Command, stdin: Optional[str] = None, timeout: float = 10.0) -> Result:
    try:
        proc = subprocess.run(
            list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise MissingFeature(f"{cmd[0]} not found: install iproute2") from exc
    except subprocess.TimeoutExpired as exc:
        raise ShaperError(f"{' '.join(cmd)} did not finish within {timeout:g} s") from exc
    return Result(proc.returncode, proc.stdout, proc.stderr)


def has_cap_net_admin(status_text: str) -> bool:
    """CAP_NET_ADMIN in the effective set, from /proc/self/status text."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    return False


@dataclass
class AppliedTier:
    """What the shaper did and whether the kernel's read-back matched the plan."""

    interface: str
    ifb: str
    down_mbps: float
    up_mbps: float
    per_client_mbps: Optional[float]
    clients: Dict[str, int]
    verified: bool
    problems: List[str] = field(default_factory=list)
    commands: List[str] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


class Shaper:
    """Shapes one hotspot interface (and its IFB twin). See agent.shaper for the API."""

    def __init__(self, interface: str, netns: Optional[str] = None) -> None:
        if not interface or len(interface) > 15 or "/" in interface or " " in interface:
            raise ShaperError(f"{interface!r} is not an interface name")
        self.interface = interface
        self.ifb = ifb_name(interface)
        self.netns = netns

    # -- running commands -------------------------------------------------------------

    def _run(self, cmd: Command, check: bool = True) -> Result:
        result = run_command(with_netns(cmd, self.netns))
        if check and result.returncode != 0:
            raise classify(cmd, result.stderr or result.stdout, self.interface)
        return result

    def _run_all(self, commands: List[Command]) -> None:
        """Run a plan: consecutive tc commands go through one `tc -batch -` process
        (hundreds of per-client commands would otherwise cost a process each)."""
        i = 0
        while i < len(commands):
            if commands[i][0] != "tc":
                self._run(commands[i])
                i += 1
                continue
            j = i
            while j < len(commands) and commands[j][0] == "tc":
                j += 1
            self._run_batch(commands[i:j])
            i = j

    def _run_batch(self, batch: List[Command]) -> None:
        if len(batch) == 1:
            self._run(batch[0])
            return
        lines = "".join(" ".join(cmd[1:]) + "\n" for cmd in batch)
        result = run_command(with_netns(("tc", "-batch", "-"), self.netns), stdin=lines,
                             timeout=10.0 + len(batch) * 0.1)  # fmt: skip
        if result.returncode == 0:
            return
        text = result.stderr or result.stdout
        failed = _BATCH_FAILED.search(text)
        if failed is None:
            raise classify(("tc", "-batch"), text, self.interface)
        number = int(failed.group(1))
        # tc prints the failing command's error just before its "Command failed" line.
        raise classify(batch[number - 1], text[: failed.start()], self.interface)

    def _show(self, *args: str) -> str:
        return self._run(("tc", *args)).stdout

    # -- checks -----------------------------------------------------------------------

    def check(self) -> None:
        """Raise a plain ShaperError when tc is missing, the interface is absent or we
        lack CAP_NET_ADMIN. Kernel features are found missing when their command fails."""
        for tool in ("tc", "ip"):
            if shutil.which(tool) is None:
                raise MissingFeature(f"{tool} not found: install iproute2")
        if not self._exists(self.interface):
            raise NoSuchInterface(f"interface {self.interface} does not exist")
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                status = fh.read()
        except OSError:  # pragma: no cover - /proc is always there on Linux
            return
        if not has_cap_net_admin(status):
            raise NotPermitted(
                "not permitted to change traffic control: run as root or give the agent "
                "CAP_NET_ADMIN (the systemd unit does)"
            )

    def _exists(self, dev: str) -> bool:
        result = self._run(("ip", "-j", "link", "show", "dev", dev), check=False)
        return result.returncode == 0

    # -- state ------------------------------------------------------------------------

    def read_state(self) -> Tuple[DeviceState, DeviceState]:
        """(interface state, IFB state) as tc reports them now."""
        if not self._exists(self.interface):
            raise NoSuchInterface(f"interface {self.interface} does not exist")
        down = self._device_state(self.interface, ingress=True)
        up = self._device_state(self.ifb, ingress=False)
        return down, up

    def _device_state(self, dev: str, ingress: bool) -> DeviceState:
        if not self._exists(dev):
            return DeviceState(exists=False)
        return device_state(
            self._show("-j", "qdisc", "show", "dev", dev),
            self._show("-j", "class", "show", "dev", dev),
            self._show("-j", "filter", "show", "dev", dev, "parent", "1:"),
            self._show("-j", "filter", "show", "dev", dev, "parent", "ffff:") if ingress else "",
        )

    # -- the public operations ----------------------------------------------------------

    def plan(self, tier: Tier, clients: Sequence[str] = ()) -> Plan:
        """The commands apply() would run now (reads state; changes nothing)."""
        down, up = self.read_state()
        return plan(self.interface, tier, clients, down, up)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One applier per interface at a time (the daemon and a technician's CLI)."""
        base = LOCK_DIR if os.access(LOCK_DIR, os.W_OK) else tempfile.gettempdir()
        name = f"shaper-{self.netns + '-' if self.netns else ''}{self.interface}.lock"
        # Read-only is enough for flock, and lets the unprivileged daemon lock a file
        # that a technician's root CLI created (and the other way round).
        try:
            fd = os.open(os.path.join(base, name), os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ShaperError(f"cannot open the shaper lock in {base}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def apply(self, tier: Tier, clients: Sequence[str] = ()) -> AppliedTier:
        """Shape to `tier`, then verify by read-back. Raises ShaperError when a command
        fails; returns verified=False (with problems) when the read-back differs."""
        self.check()
        with self._locked():
            todo = self.plan(tier, clients)
            self._run_all(todo.commands)
            result = self.verify(tier, clients)
        result.commands = todo.render(self.netns)
        return result

    def verify(self, tier: Tier, clients: Sequence[str] = ()) -> AppliedTier:
        """Read tc back and compare with what `tier` needs; changes nothing."""
        down, up = self.read_state()
        expected = plan(self.interface, tier, clients, down, up)
        problems = compare(expected, down, up)
        return AppliedTier(
            interface=self.interface,
            ifb=self.ifb,
            down_mbps=tier.down_mbps,
            up_mbps=tier.up_mbps,
            per_client_mbps=tier.per_client_mbps,
            clients=dict(expected.clients),
            verified=not problems,
            problems=problems,
        )

    def usage(self) -> Dict[str, int]:
        """Bytes sent through the tier so far: down (interface) and up (IFB)."""
        out = {}
        for key, dev in (("down_bytes", self.interface), ("up_bytes", self.ifb)):
            classes = parse_classes(self._show("-s", "class", "show", "dev", dev))
            root = classes.get(ROOT_MINOR)
            if root is None:
                raise ShaperError(f"{dev} is not shaped")
            out[key] = root.sent_bytes
        return out

    def remove(self) -> None:
        """Remove all shaping; missing pieces are not an error."""
        for cmd in teardown(self.interface):
            self._run(cmd, check=False)
