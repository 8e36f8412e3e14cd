"""Client counters that listen: passive capture, probe requests, and an active ARP scan.

- `clients_capture`: the hotspot interface through AF_PACKET + BPF (ARP and DHCP only),
  read in a thread; counts `connected`.
- `clients_probes`: a monitor-mode interface, BPF keeps only probe requests; counts
  `nearby` and `nearby_randomized`.
- `clients_arpscan`: every `every_s`, asks each address of the subnet at `rate_pps`;
  counts `connected`. scapy is imported only when a scan runs.

Metrics: `{name}_connected_1m|15m|1h`, `{name}_nearby_...`, `{name}_nearby_randomized_...`,
`{name}_dwell_<bucket>`. A capture whose interface vanished raises CollectorError
(`unavailable`) on every tick until it can be opened again.

Sample config:

    [[collectors]]
    type = "clients_capture"
    name = "lan"
    interface = "br-hotspot"

    [[collectors]]
    type = "clients_probes"
    name = "air"
    interface = "mon0"

    [[collectors]]
    type = "clients_arpscan"
    name = "arpscan"
    interface = "br-hotspot"
    subnet = "10.42.0.0/24"
    rate_pps = 20
    every_s = 300
"""

import threading
import time
from typing import Optional

from agent.clients.counter import CONNECTED, INFRA, ClientCounter
from agent.clients.errors import CaptureError, ClientsError
from agent.clients.identity import shared_keyring
from agent.clients.live import LiveCapture, interface_mac
from agent.collectors.base import Accumulator
from simpul_wire.config.clients import ArpScanConfig, CaptureConfig, ProbesConfig


class _CaptureCollector:
    """A LiveCapture in its own thread; gather reads the counter under a lock."""

    stream = "telemetry"
    monitor = False

    def __init__(self, name: str, interface: str, idle_s: float = 300.0) -> None:
        self.name = name
        self.interface = interface
        self.counter = ClientCounter(keyring=shared_keyring(), idle_s=idle_s)
        self.lock = threading.Lock()
        self.error: Optional[str] = None
        self.errors_caught = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.capture: Optional[LiveCapture] = None

    def start(self) -> None:
        try:
            self._open()
        except CaptureError as exc:
            self.error = str(exc)  # reported by gather; retried there

    def _open(self) -> None:
        capture = LiveCapture(self.interface, self.counter, monitor=self.monitor, lock=self.lock)
        capture.open()
        self.capture, self.error = capture, None
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"capture-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        capture = self.capture
        assert capture is not None
        while not self._stop.is_set():
            try:
                capture.poll()
            except CaptureError as exc:
                self.error = str(exc)
                break
            except Exception as exc:  # top of the loop: count it, report it, stop cleanly
                self.errors_caught += 1
                self.error = f"capture failed: {exc!r}"
                break
        capture.close()

    def gather(self, acc: Accumulator) -> None:
        if self.error is not None:
            if self._thread is not None:
                self._thread.join(timeout=1.0)
                self._thread = None
            try:
                self._open()
            except CaptureError as exc:
                raise ClientsError(f"{self.error}; reopening: {exc}") from exc
        now = time.time()
        with self.lock:
            self.counter.prune(now)
            metrics = self.counter.metrics(now)
        for key, value in metrics.items():
            if key.startswith("nearby") == self.monitor:
                acc.add(f"{self.name}_{key}", value)
        acc.status(self.name, "ok")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


class CaptureCollector(_CaptureCollector):
    def __init__(self, config: CaptureConfig) -> None:
        super().__init__(config.name, config.interface, config.idle_s)


class ProbesCollector(_CaptureCollector):
    monitor = True

    def __init__(self, config: ProbesConfig) -> None:
        super().__init__(config.name, config.interface)


class ArpScanCollector:
    """Scans in a thread every `every_s`; gather reports what the scans found."""

    stream = "telemetry"

    def __init__(self, config: ArpScanConfig) -> None:
        self.name = config.name
        self.config = config
        self.counter = ClientCounter(keyring=shared_keyring(), idle_s=config.idle_s)
        self.lock = threading.Lock()
        self.error: Optional[str] = "no scan has finished yet"
        self.scans = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"arpscan-{self.name}", daemon=True)
        self._thread.start()

    def scan_once(self) -> None:
        from agent.clients.arpscan import arp_scan

        cfg = self.config
        macs = arp_scan(cfg.interface, cfg.subnet, cfg.rate_pps)
        now = time.time()
        own = interface_mac(cfg.interface)
        with self.lock:
            if own is not None:  # never count the box, should it answer for itself
                self.counter.see(INFRA, own, now)
            for mac in macs:
                self.counter.see(CONNECTED, mac, now)
        self.error = None
        self.scans += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan_once()
            except ClientsError as exc:
                self.error = str(exc)
            self._wake.wait(self.config.every_s)
            self._wake.clear()

    def rescan(self) -> None:
        """Scan now rather than at the next `every_s` (the `rescan_clients` command)."""
        self._wake.set()

    def gather(self, acc: Accumulator) -> None:
        if self.error is not None:
            raise ClientsError(self.error)
        now = time.time()
        with self.lock:
            self.counter.prune(now)
            metrics = self.counter.metrics(now)
        for key, value in metrics.items():
            if not key.startswith("nearby"):
                acc.add(f"{self.name}_{key}", value)
        acc.status(self.name, "ok")

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
