"""Host side of the serial protocols spoken by sensors and Simpul sensor boards.

Framers are pure functions over bytes (see framing.py); port I/O lives in the agent.
Python 3.9 compatible, and free of fleet imports.
"""

from firmware_bridge.errors import BridgeError, FrameError, RegisterMapError
from firmware_bridge.framing import Counters, Decoded, StreamDecoder

__all__ = ["BridgeError", "Counters", "Decoded", "FrameError", "RegisterMapError",
           "StreamDecoder"]
