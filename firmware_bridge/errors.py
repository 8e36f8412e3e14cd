"""The firmware bridge's exception tree.

    BridgeError
    ├── FrameError        bytes that cannot be encoded or a payload that does not parse
    └── RegisterMapError  a Modbus register map that does not validate
"""


class BridgeError(Exception):
    """Base of every error firmware_bridge raises on purpose."""


class FrameError(BridgeError):
    """A message that cannot be encoded, or a frame body that does not parse."""


class RegisterMapError(BridgeError):
    """A register map (TOML) that does not validate; the message names the field."""
