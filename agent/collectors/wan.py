"""WAN latency and loss to a configured target, by TCP connect or ICMP ping.

Sample config:

    [[collectors]]
    type = "wan"
    name = "wan"
    target = "1.1.1.1"
    method = "tcp"          # "tcp" (connect to target:port) or "icmp" (the ping tool)
    port = 443
    count = 3
    timeout_s = 1.0
    interval_s = 30.0

TCP: each probe is one connect; its time is the round trip (a refused connection is a
reply too: the RST came back over the WAN). ICMP runs `ping` (CAP_NET_RAW, or the
unprivileged ICMP socket range) and parses its summary. Probes run in their own thread
every interval_s, so a dead uplink never holds up the other collectors.

Metrics: `<name>_rtt_ms` (mean of the replies, absent when none came back),
`<name>_rtt_max_ms`, `<name>_loss_percent`. Status `<name>`: ok, or unavailable with
the reason (no reply at all, DNS failure, ping missing).
"""

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import List, Optional

from agent.collectors.background import BackgroundProbe
from agent.collectors.base import Accumulator
from agent.errors import CollectorError
from simpul_wire.config.probes import WanConfig


@dataclass(frozen=True)
class WanSample:
    sent: int
    received: int
    rtt_avg_ms: Optional[float] = None
    rtt_max_ms: Optional[float] = None
    reason: Optional[str] = None  # why the last probe failed, if one did

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 100.0


_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_RTT = re.compile(r"= [\d.]+/([\d.]+)/([\d.]+)")


def parse_ping(text: str) -> WanSample:
    """The summary of iputils/busybox ping: sent, received and avg/max round trip."""
    m = _SUMMARY.search(text)
    if not m:
        raise CollectorError(f"cannot read ping output: {text.strip()[-80:]!r}")
    sent, received = int(m.group(1)), int(m.group(2))
    rtt = _RTT.search(text)
    if rtt and received:
        return WanSample(sent, received, float(rtt.group(1)), float(rtt.group(2)))
    return WanSample(sent, received)


def tcp_probe(host: str, port: int, timeout_s: float) -> float:
    """One TCP connect; its round trip in ms. CollectorError when nothing came back."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise CollectorError(f"cannot resolve {host}: {exc.strerror}") from exc
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.settimeout(timeout_s)
        start = time.monotonic()
        try:
            sock.connect(addr)
        except ConnectionRefusedError:
            pass  # the RST crossed the WAN: a reply
        except socket.timeout as exc:
            raise CollectorError(f"no reply from {host}:{port} within {timeout_s:g} s") from exc
        except OSError as exc:
            raise CollectorError(f"{host}:{port}: {exc.strerror or exc}") from exc
        return (time.monotonic() - start) * 1000.0


class WanCollector:
    stream = "health"

    def __init__(self, config: WanConfig) -> None:
        self.name = config.name
        self._config = config
        self._probe: BackgroundProbe[WanSample] = BackgroundProbe(
            config.name, self.probe_once, config.interval_s
        )

    def probe_once(self) -> WanSample:
        c = self._config
        if c.method == "icmp":
            return self._ping()
        rtts: List[float] = []
        reason = None
        for _ in range(c.count):
            try:
                rtts.append(tcp_probe(c.target, c.port, c.timeout_s))
            except CollectorError as exc:
                if "cannot resolve" in str(exc):
                    raise
                reason = str(exc)
        if not rtts:
            return WanSample(c.count, 0, reason=reason)
        return WanSample(c.count, len(rtts), sum(rtts) / len(rtts), max(rtts), reason)

    def _ping(self) -> WanSample:
        c = self._config
        exe = shutil.which("ping")
        if exe is None:
            raise CollectorError("ping not found: install iputils-ping or use method = \"tcp\"")
        cmd = [exe, "-n", "-q", "-c", str(c.count), "-i", "0.2", "-W", f"{c.timeout_s:g}",
               c.target]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  timeout=c.count * (c.timeout_s + 0.2) + 5)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise CollectorError("ping did not finish") from exc
        if proc.returncode not in (0, 1):  # 1 = some replies missing
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise CollectorError(f"ping failed: {msg[-1] if msg else proc.returncode}")
        sample = parse_ping(proc.stdout)
        if sample.received:
            return sample
        return WanSample(sample.sent, 0, reason=f"no ping reply from {c.target}")

    def refresh(self) -> None:
        """Probe now, in the calling thread (for `doctor` and tests); gather reports it."""
        self._probe.run_once()

    def start(self) -> None:
        self._probe.start()

    def gather(self, acc: Accumulator) -> None:
        sample = self._probe.report(acc, self.name)
        if sample is None:
            return
        acc.add(f"{self.name}_loss_percent", sample.loss_percent)
        if sample.rtt_avg_ms is not None and sample.rtt_max_ms is not None:
            acc.add(f"{self.name}_rtt_ms", sample.rtt_avg_ms)
            acc.add(f"{self.name}_rtt_max_ms", sample.rtt_max_ms)
        if sample.received == 0:
            acc.status(self.name, "unavailable", sample.reason or "no reply")
        else:
            acc.status(self.name, "ok")

    def close(self) -> None:
        self._probe.close()
