"""The flasher's exception tree. Every message says what the technician can do next.

    BridgeError                     (firmware_bridge.errors)
    └── FlashError                  exit_code 1: anything the flasher refuses or fails
        ├── ImageError              exit_code 3: the image file is unreadable or does not fit
        ├── PortError               exit_code 4: the serial port cannot be opened
        ├── NoSyncError             exit_code 5: the bootloader never answered
        ├── ProtocolError           exit_code 6: a reply that breaks the protocol
        │   └── WrongBoardError     exit_code 7: the chip's signature is not the profile's
        └── VerifyError             exit_code 8: read-back differs from what was written

Exit code 2 stays argparse's (bad usage). A FlashError never follows a successful flash:
the board counts as flashed only after every written page has been read back and compared.
"""

from firmware_bridge.errors import BridgeError


class FlashError(BridgeError):
    """Base of every error the flasher raises on purpose."""

    exit_code = 1


class ImageError(FlashError):
    """An image file that cannot be read, parsed or placed on the chosen board."""

    exit_code = 3


class PortError(FlashError):
    """A serial port that cannot be opened or written."""

    exit_code = 4


class NoSyncError(FlashError):
    """The bootloader did not answer the sync request, after every retry."""

    exit_code = 5


class ProtocolError(FlashError):
    """A reply that is not what the protocol allows (line noise, wrong baud, wrong tool)."""

    exit_code = 6


class WrongBoardError(ProtocolError):
    """The chip answered, but with another chip's signature."""

    exit_code = 7


class VerifyError(FlashError):
    """Flash read back differs from the image: the board is NOT flashed."""

    exit_code = 8

    def __init__(self, message: str, address: int, expected: int, actual: int) -> None:
        super().__init__(message)
        self.address = address
        self.expected = expected
        self.actual = actual
