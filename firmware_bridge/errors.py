"""The firmware bridge's exception tree: one base for the whole package.

    BridgeError
    ├── FrameError        bytes that cannot be encoded or a payload that does not parse
    ├── RegisterMapError  a Modbus register map that does not validate
    └── FlashError        the flasher (flasher/errors.py, with exit codes for the CLI)

ValueError/KeyError remain only for a caller's programming mistakes (an odd flash
address, an unknown profile name passed to get_profile), as Python's own APIs do.
"""


class BridgeError(Exception):
    """Base of every error firmware_bridge raises on purpose."""


class FrameError(BridgeError):
    """A message that cannot be encoded, or a frame body that does not parse."""


class RegisterMapError(BridgeError):
    """A register map (TOML) that does not validate; the message names the field."""
