"""Serial sensor drivers for the agent: port readers and per-device protocol drivers.

Framing lives in firmware_bridge (pure functions); this package opens ports, feeds
bytes to framers, answers devices and keeps per-port counters.
"""
