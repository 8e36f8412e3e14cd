"""Raspberry Pi power and thermal throttling, from `vcgencmd get_throttled`.

Sample config:

    [[collectors]]
    type = "pi_throttle"
    name = "pi_power"
    command = "vcgencmd"
    timeout_s = 2.0

`vcgencmd get_throttled` prints `throttled=0x50005`. The bits (Raspberry Pi firmware):

    bit  0  under-voltage now              bit 16  under-voltage has occurred
    bit  1  ARM frequency capped now       bit 17  frequency capping has occurred
    bit  2  throttled now                  bit 18  throttling has occurred
    bit  3  soft temperature limit now     bit 19  soft temperature limit has occurred

("has occurred" means since boot.) Metrics are 0/1 per bit plus the raw word. Where
vcgencmd does not exist (not a Pi) the source is `unavailable` with that reason.
"""

import re
import shutil
import subprocess
from typing import Dict

from agent.collectors.base import Accumulator, PollingCollector
from agent.errors import CollectorError
from simpul_wire.config.probes import PiThrottleConfig

BITS = {
    0: "undervoltage_now",
    1: "freq_capped_now",
    2: "throttled_now",
    3: "soft_temp_limit_now",
    16: "undervoltage_occurred",
    17: "freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
_LINE = re.compile(r"^\s*throttled=(0x[0-9a-fA-F]+|[0-9]+)\s*$")


def parse_throttled(text: str) -> int:
    """'throttled=0x50005\\n' -> 0x50005; CollectorError for anything else."""
    m = _LINE.match(text.strip())
    if not m:
        raise CollectorError(f"vcgencmd printed {text.strip()[:60]!r}, not throttled=0x...")
    return int(m.group(1), 0)


def decode(word: int) -> Dict[str, int]:
    return {name: (word >> bit) & 1 for bit, name in BITS.items()}


class PiThrottleCollector(PollingCollector):
    stream = "health"

    def __init__(self, config: PiThrottleConfig) -> None:
        self.name = config.name
        self._command = config.command
        self._timeout = config.timeout_s

    def _read(self) -> str:
        exe = shutil.which(self._command)
        if exe is None:
            raise CollectorError(f"{self._command} not found (not a Raspberry Pi?)")
        try:
            proc = subprocess.run([exe, "get_throttled"], capture_output=True, text=True,
                                  timeout=self._timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise CollectorError(f"vcgencmd gave no answer within {self._timeout:g} s") from exc
        except OSError as exc:
            raise CollectorError(f"cannot run {exe}: {exc.strerror}") from exc
        if proc.returncode != 0:
            # e.g. "VCHI initialization failed" without access to /dev/vchiq
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise CollectorError(f"vcgencmd failed: {msg[0] if msg else proc.returncode}")
        return proc.stdout

    def gather(self, acc: Accumulator) -> None:
        try:
            word = parse_throttled(self._read())
        except CollectorError as exc:
            acc.status(self.name, "unavailable", str(exc))
            return
        acc.add("pi_throttled_raw", word)
        for name, value in decode(word).items():
            acc.add(f"pi_{name}", value)
        acc.status(self.name, "ok")
