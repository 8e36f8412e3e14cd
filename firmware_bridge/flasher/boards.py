"""Board profiles: what the flasher needs to know about each kind of sensor board.

Each profile is a small frozen description, like esptool's per-chip constants. Speeds,
sizes and bootloaders follow Arduino's boards.txt (arduino-core-avr 1.8): a board's
application area ends where its bootloader starts.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

STK500V1 = "stk500v1"
ESPTOOL = "esptool"


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    protocol: str                   # STK500V1 or ESPTOOL
    baud: int
    bootloader: str = ""            # what the technician may know it by
    mcu: str = ""
    signature: bytes = b""          # STK500 READ_SIGN answer (AVR only)
    page_size: int = 0              # bytes per flash page (AVR only)
    max_size: int = 0               # application bytes, below the bootloader (AVR only)
    chip: str = ""                  # esptool chip name (ESP only)
    # What to suggest when sync fails at this profile's speed.
    alternatives: Tuple[str, ...] = ()

    @property
    def flash_size(self) -> int:
        """The chip's whole flash in bytes, bootloader section included (AVR only)."""
        return FLASH_BYTES.get(self.mcu, 0)


ATMEGA328P = b"\x1e\x95\x0f"
ATMEGA168 = b"\x1e\x94\x06"
FLASH_BYTES = {"atmega328p": 32768, "atmega168": 16384}

_PROFILES = (
    BoardProfile("uno", "Arduino Uno (Optiboot)", STK500V1, 115200, "optiboot",
                 "atmega328p", ATMEGA328P, 128, 32256, alternatives=("nano-old",)),
    BoardProfile("nano", "Arduino Nano, new bootloader (Optiboot)", STK500V1, 115200,
                 "optiboot", "atmega328p", ATMEGA328P, 128, 30720,
                 alternatives=("nano-old",)),
    BoardProfile("nano-old", "Arduino Nano, old bootloader (ATmegaBOOT)", STK500V1, 57600,
                 "atmegaboot", "atmega328p", ATMEGA328P, 128, 30720,
                 alternatives=("nano",)),
    BoardProfile("pro-mini", "Arduino Pro Mini 5 V 16 MHz, ATmega328P (ATmegaBOOT)",
                 STK500V1, 57600, "atmegaboot", "atmega328p", ATMEGA328P, 128, 30720,
                 alternatives=("uno",)),
    BoardProfile("pro-mini-8mhz", "Arduino Pro Mini 3.3 V 8 MHz, ATmega328P (ATmegaBOOT)",
                 STK500V1, 57600, "atmegaboot", "atmega328p", ATMEGA328P, 128, 30720,
                 alternatives=("uno",)),
    BoardProfile("duemilanove", "Arduino Duemilanove, ATmega328P (ATmegaBOOT)", STK500V1,
                 57600, "atmegaboot", "atmega328p", ATMEGA328P, 128, 30720,
                 alternatives=("uno",)),
    BoardProfile("nano-168", "Arduino Nano / Pro Mini with ATmega168 (ATmegaBOOT)",
                 STK500V1, 19200, "atmegaboot", "atmega168", ATMEGA168, 128, 14336,
                 alternatives=("nano-old",)),
    BoardProfile("esp32", "ESP32 DevKit (ROM bootloader, through esptool)", ESPTOOL, 460800,
                 "esp32-rom", chip="esp32", alternatives=("esp32-slow",)),
    BoardProfile("esp32-slow", "ESP32 on a long or poor cable (115200 baud)", ESPTOOL,
                 115200, "esp32-rom", chip="esp32"),
)

PROFILES: Dict[str, BoardProfile] = {p.name: p for p in _PROFILES}
DEFAULT_BOARD = "uno"


def get_profile(name: str) -> BoardProfile:
    """The profile called `name`; a KeyError names the choices."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown board {name!r}; choose one of {', '.join(PROFILES)}") from None
