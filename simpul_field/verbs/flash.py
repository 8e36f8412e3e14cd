"""`simpul-field flash`: write and verify a sensor board's firmware.

    simpul-field flash --port /dev/ttyUSB0 --hex sensor.hex [--board uno] [--baud B]
    simpul-field flash --port /dev/ttyUSB0 --bin app.bin --board esp32 [--address 0x10000]

Exit codes: 0 flashed and verified; 2 bad usage; 3 image; 4 port; 5 no sync;
6 protocol; 7 wrong board; 8 verify mismatch (see firmware_bridge/flasher/errors.py);
2 also when a package of the field extra is missing. The flasher itself is
firmware_bridge/flasher/; this is its command line.
"""

import argparse
import sys
from typing import Any

from firmware_bridge.flasher.boards import DEFAULT_BOARD, ESPTOOL, PROFILES
from firmware_bridge.flasher.errors import ImageError
from simpul_field.extras import require


def _board_help() -> str:
    return "; ".join(f"{p.name}: {p.description}, {p.baud}" for p in PROFILES.values())


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "flash", help="flash a sensor board, with progress and verify",
        description="Flash a sensor board and verify it by reading it back. "
        f"Boards: {_board_help()}.")
    p.add_argument("--port", required=True,
                   help="serial port: /dev/ttyUSB0, /dev/ttyACM0, or a pyserial URL")
    image = p.add_mutually_exclusive_group(required=True)
    image.add_argument("--hex", help="Intel HEX image (AVR boards)")
    image.add_argument("--bin", help="application .bin (ESP32 boards, written by esptool)")
    p.add_argument("--board", default=DEFAULT_BOARD, choices=sorted(PROFILES),
                   metavar="NAME", help=f"board profile (default {DEFAULT_BOARD})")
    p.add_argument("--baud", type=int, help="override the profile's speed")
    p.add_argument("--address", type=lambda s: int(s, 0), default=0x10000,
                   help="ESP32 only: flash offset of --bin (default 0x10000)")
    p.add_argument("--no-reset", action="store_true",
                   help="do not pulse DTR/RTS (the board is already in its bootloader)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        return _flash(args)
    except KeyboardInterrupt:
        print("simpul-field: interrupted: the board is NOT flashed; run again",
              file=sys.stderr)
        return 130


def _flash(args: argparse.Namespace) -> int:
    profile = PROFILES[args.board]
    if profile.protocol == ESPTOOL:
        if not args.bin:
            raise ImageError(f"{profile.name} takes an application .bin: use --bin, not --hex")
        require("flash", "serial", "esptool",
                note=None if sys.version_info >= (3, 10) else "esptool 5 needs Python 3.10+")
        from firmware_bridge.flasher.esp import flash_esp

        esp = flash_esp(args.port, args.bin, profile, address=args.address,
                        baud=args.baud, reset=not args.no_reset, log=_say)
        print(f"flashed and verified: {esp.bytes_written} bytes at {args.address:#x} "
              f"on {esp.chip} at {args.port} ({esp.seconds:.1f} s)")
        return 0
    if not args.hex:
        raise ImageError(f"{profile.name} takes an Intel HEX image: use --hex, not --bin")
    require("flash", "serial", "intelhex", "tqdm")
    from firmware_bridge.flasher.flash import flash_avr
    from firmware_bridge.flasher.image import load_hex
    from firmware_bridge.flasher.reset import dtr_rts_pulse, no_reset

    image = load_hex(args.hex)
    result = flash_avr(args.port, image, profile, baud=args.baud, progress=not args.quiet,
                       reset=no_reset if args.no_reset else dtr_rts_pulse, log=_say)
    print(f"flashed and verified: {image.size} bytes in {result.pages} pages on "
          f"{result.board} at {result.port}, {result.baud} baud ({result.seconds:.1f} s"
          + (f", {result.retries} retries" if result.retries else "") + ")")
    return 0
