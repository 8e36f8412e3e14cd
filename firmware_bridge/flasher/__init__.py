"""Flash sensor boards: AVR over STK500v1 (Optiboot, ATmegaBOOT), ESP32 through esptool.

    image.py    Intel HEX -> flash pages (intelhex)
    stk500.py   the STK500v1 framer: pure functions over bytes
    client.py   the STK500v1 client over a pyserial-like port
    reset.py    reset strategies (DTR/RTS pulse, none)
    boards.py   board profiles
    flash.py    reset, sync, signature, write, verify (AVR)
    esp.py      ESP32 through esptool's public API
"""

from firmware_bridge.flasher.boards import PROFILES, BoardProfile, get_profile
from firmware_bridge.flasher.errors import (
    FlashError,
    ImageError,
    NoSyncError,
    PortError,
    ProtocolError,
    VerifyError,
    WrongBoardError,
)

__all__ = ["PROFILES", "BoardProfile", "FlashError", "ImageError", "NoSyncError",
           "PortError", "ProtocolError", "VerifyError", "WrongBoardError", "get_profile"]
