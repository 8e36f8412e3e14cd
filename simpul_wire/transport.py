"""How either side tunes its MQTT socket.

The box and the fleet are the two ends of every QoS 1 exchange (PUBLISH, PUBACK, the
other side's reply), so both must turn Nagle off: with it on at either end, each hop
waits for the peer's delayed ACK. One function, so the two ends cannot drift apart.
"""

import socket
from typing import Any


def no_delay(sock: Any) -> None:
    """TCP_NODELAY: paho leaves Nagle on, and a QoS 1 exchange (PUBLISH, PUBACK, the
    fleet's reply) then waits for the peer's delayed ACK, ~40 ms a hop on Linux."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (a test's socketpair): nothing to tune
