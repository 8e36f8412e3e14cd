"""ESP32 boards through esptool's public API (esptool 5; Python 3.10 or newer).

esptool does the work: reset into the ROM bootloader, sync, chip detection, the flasher
stub, compressed writes and an MD5 check of what it wrote. We add the checks and the
words around it: the image must be an application image for the chip; the chip must
be the one the profile names; after the write, `verify_flash` reads it back again.
"""

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from firmware_bridge.flasher.boards import BoardProfile
from firmware_bridge.flasher.errors import (
    FlashError,
    ImageError,
    NoSyncError,
    PortError,
    VerifyError,
    WrongBoardError,
)

ROM_BAUD = 115200


@dataclass(frozen=True)
class EspResult:
    chip: str
    bytes_written: int
    seconds: float


def _esptool() -> Any:
    try:
        import esptool
        import esptool.cmds
    except ImportError as exc:
        raise FlashError(
            "ESP32 boards need esptool 5 (Python 3.10+): pip install 'esptool>=5'"
        ) from exc
    return esptool


def check_image(path: str, chip: str) -> bytes:
    """The image's bytes, if esptool reads it as an application image for `chip`."""
    _esptool()
    from esptool.bin_image import LoadFirmwareImage
    from esptool.util import FatalError

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}; check the --bin path") from exc
    from esptool.targets import CHIP_DEFS

    advice = "give the .bin your build wrote for this board, not a merged or bootloader image"
    try:
        image = LoadFirmwareImage(chip, data)
    except (FatalError, ValueError, IndexError) as exc:
        raise ImageError(f"{path} is not an {chip} application image ({exc}); {advice}") from exc
    wanted = CHIP_DEFS[chip].IMAGE_CHIP_ID
    if getattr(image, "chip_id", wanted) != wanted:
        raise ImageError(f"{path} is not an {chip} application image (its header names "
                         f"chip id {image.chip_id}, {chip} is {wanted}); {advice}")
    return data


def flash_esp(
    url: str,
    path: str,
    profile: BoardProfile,
    *,
    address: int = 0x10000,
    baud: Optional[int] = None,
    reset: bool = True,
    connect_attempts: int = 3,
    log: Callable[[str], None] = lambda _msg: None,
) -> EspResult:
    data = check_image(path, profile.chip)
    esptool = _esptool()
    from esptool.util import FatalError

    started = time.monotonic()
    mode = "default-reset" if reset else "no-reset"
    try:
        esp = esptool.cmds.detect_chip(url, ROM_BAUD, mode, connect_attempts=connect_attempts)
    except FatalError as exc:
        raise NoSyncError(
            f"no answer from an ESP32 bootloader at {url} ({str(exc).splitlines()[0]}): "
            "hold BOOT, tap EN/RST, release BOOT and run again; try --board esp32-slow; "
            "check the cable (a data cable, not charge-only)"
        ) from exc
    except OSError as exc:
        raise PortError(f"cannot open {url}: {exc}; check --port") from exc
    try:
        name = str(esp.CHIP_NAME)
        if name.lower().replace("-", "") != profile.chip.replace("-", ""):
            raise WrongBoardError(f"the board is an {name}, not an {profile.chip}: "
                                  "pick the matching --board")
        esp = esp.run_stub()
        if baud or profile.baud != ROM_BAUD:
            esp.change_baud(baud or profile.baud)
        esptool.cmds.attach_flash(esp)
        log(f"writing {len(data)} bytes at {address:#x} on {name}")
        esptool.cmds.write_flash(esp, [(address, data)])
        try:
            esptool.cmds.verify_flash(esp, [(address, data)])
        except FatalError as exc:
            raise VerifyError(f"verify failed on {name}: {exc}. The board is NOT flashed: "
                              "run again", address, -1, -1) from exc
        esptool.cmds.reset_chip(esp, "hard-reset")
    except FatalError as exc:
        raise FlashError(f"{exc}. The board is NOT flashed: run again") from exc
    finally:
        esp._port.close()
    return EspResult(name, len(data), time.monotonic() - started)
