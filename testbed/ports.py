"""Free TCP ports for the processes that tests and benchmarks start.

Asking the kernel for port 0 and closing the socket hands out a port from the ephemeral
range, where every outgoing connection also takes its local port, and where a second
pytest-xdist worker asks at the same moment: the port can be gone before Mosquitto or the
fleet binds it. So: ports below the ephemeral range, each worker in its own slice, never
the same one twice in a process, and only ones nobody listens on now.
"""

import functools
import os
import random
import socket
from typing import Set, Tuple

_handed: Set[int] = set()


@functools.cache  # the range and the worker do not change in a process
def _slice() -> Tuple[int, int]:
    low, high = 10000, 32000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
        high = min(high, ephemeral_low)
    except (OSError, ValueError, IndexError):
        pass
    if high - low < 2000:  # an unusual ephemeral range: the whole non-privileged span
        low, high = 1024, max(high, 3024)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker) % count if worker.isdigit() else 0
    span = (high - low) // count
    return low + index * span, low + (index + 1) * span


def free_port() -> int:
    low, high = _slice()
    for _ in range(500):
        port = random.randrange(low, high)
        if port in _handed:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {low}-{high}")
