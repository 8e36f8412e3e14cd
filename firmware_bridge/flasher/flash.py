"""Flash an AVR board over its STK500v1 bootloader: reset, sync, check, write, verify.

The board counts as flashed only when every page written has been read back equal;
every failure raises a FlashError whose message tells the technician what to try.
"""

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from firmware_bridge.flasher import stk500
from firmware_bridge.flasher.boards import PROFILES, STK500V1, BoardProfile
from firmware_bridge.flasher.client import Stk500Client
from firmware_bridge.flasher.errors import (
    NoSyncError,
    PortError,
    ProtocolError,
    VerifyError,
    WrongBoardError,
)
from firmware_bridge.flasher.image import FlashImage, check_fits
from firmware_bridge.flasher.reset import ResetStrategy, dtr_rts_pulse

SYNC_ATTEMPTS = 10


@dataclass(frozen=True)
class FlashResult:
    board: str
    port: str
    baud: int
    pages: int
    bytes_written: int
    seconds: float
    reset_pulsed: bool
    bootloader_version: str
    retries: int
    bootloader: str = ""            # named from its answered version (identify_bootloader)
    signature: bytes = b""          # the chip signature the board answered


def _signature_name(sig: bytes) -> str:
    for profile in PROFILES.values():
        if profile.signature == sig:
            return profile.mcu
    return "an unknown chip"


def identify_bootloader(major: int, minor: int) -> str:
    """The bootloader a GET_PARAMETER software version belongs to, or "" if unknown.

    Optiboot answers its own version (4.4 in arduino-core-avr, up to 8.x; custom builds
    add 64 or more to the major); ATmegaBOOT answers 1.16 (SW_MAJOR 1, SW_MINOR 0x10).
    """
    if 4 <= major & 0x3F <= 10:
        return "optiboot"
    if major == 1 and minor in (0x10, 0x12):
        return "atmegaboot"
    return ""


def sync_banner(profile: BoardProfile, major: int, minor: int, signature: bytes) -> str:
    """What the board said once in sync: its software version and signature, in words."""
    name = identify_bootloader(major, minor)
    said = (f"the board answered software version {major}.{minor}, "
            f"signature {signature.hex(' ')}")
    banner = (f"in sync with {name or 'a bootloader'} {major}.{minor}, "
              f"{_signature_name(signature)} ({said})")
    if name and profile.bootloader and name != profile.bootloader:
        banner += f"; note: --board {profile.name} is for {profile.bootloader}"
    return banner


def no_sync_advice(profile: BoardProfile, baud: int, pulsed: bool) -> str:
    # Only boards the host would talk to differently are worth a try.
    tips = [f"try --board {alt}" for alt in profile.alternatives
            if PROFILES[alt].baud != baud]
    if not pulsed:
        tips.append("press the board's reset button just before running this")
    else:
        tips.append("press reset")
    tips.append("check the cable (a data cable, not charge-only) and the port")
    return f"no sync at {baud}: " + ", ".join(tips)


def open_port(url: str, baud: int) -> Any:
    import serial

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=2.0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(
            f"cannot open {url}: {exc}; check --port (ls /dev/ttyUSB* /dev/ttyACM*) "
            "and that you are in the dialout group"
        ) from exc


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, disable=not enabled,
                leave=True, dynamic_ncols=True)


def flash_avr(
    url: str,
    image: FlashImage,
    profile: BoardProfile,
    *,
    baud: Optional[int] = None,
    progress: bool = True,
    reset: ResetStrategy = dtr_rts_pulse,
    log: Callable[[str], None] = lambda _msg: None,
) -> FlashResult:
    if profile.protocol != STK500V1:
        raise ValueError(f"{profile.name} is not an STK500v1 board")
    check_fits(image, profile.max_size, profile.name, profile.flash_size)
    baud = baud or profile.baud
    pages = image.pages(profile.page_size)
    total = len(pages) * profile.page_size
    started = time.monotonic()
    port = open_port(url, baud)
    try:
        pulsed = reset(port)
        log("reset pulse sent (DTR/RTS)" if pulsed
            else "no modem lines on this port: no reset pulse, trying the bootloader as is")
        client = Stk500Client(port)
        if not client.sync(SYNC_ATTEMPTS):
            raise NoSyncError(no_sync_advice(profile, baud, pulsed))
        major = client.parameter(stk500.PARM_SW_MAJOR)
        minor = client.parameter(stk500.PARM_SW_MINOR)
        version = f"{major}.{minor}"
        signature = client.read_signature()
        if signature != profile.signature:
            raise WrongBoardError(
                f"the board answered with signature {signature.hex(' ')} "
                f"({_signature_name(signature)}), but {profile.name} is {profile.mcu} "
                f"({profile.signature.hex(' ')}): pick the matching --board"
            )
        log(f"{sync_banner(profile, major, minor, signature)}; "
            f"{len(pages)} pages of {profile.page_size} bytes")
        client.enter_progmode()
        with _progress(total, "writing", progress) as bar:
            for page in pages:
                client.write_page(page.address, page.data)
                bar.update(len(page.data))
        with _progress(total, "verifying", progress) as bar:
            for page in pages:
                back = client.read_page(page.address, len(page.data))
                _compare(page.address, page.data, back)
                bar.update(len(page.data))
        _leave(client, log)
    except ProtocolError as exc:
        if isinstance(exc, WrongBoardError):
            raise
        raise ProtocolError(
            f"{exc}. The board is NOT flashed: check the cable and --board "
            f"{profile.name} ({baud} baud), then run again"
        ) from exc
    except OSError as exc:
        raise PortError(f"{url}: {exc}; was the board unplugged?") from exc
    finally:
        port.close()
    return FlashResult(profile.name, url, baud, len(pages), total,
                       time.monotonic() - started, pulsed, version, client.counters.retries,
                       identify_bootloader(major, minor), signature)


def _leave(client: Stk500Client, log: Callable[[str], None]) -> None:
    """Every page is verified by now, so a lost answer here does not undo the flash."""
    try:
        client.leave_progmode()
    except ProtocolError as exc:
        log(f"flash verified, but the bootloader did not confirm leaving ({exc}): "
            "press reset to start the new firmware")


def _compare(address: int, wrote: bytes, back: bytes) -> None:
    if back == wrote:
        return
    at = next((i for i, (a, b) in enumerate(zip(wrote, back)) if a != b),
              min(len(wrote), len(back)))  # equal prefix: the first missing byte
    expected = wrote[at] if at < len(wrote) else -1
    actual = back[at] if at < len(back) else -1
    read = f"{actual:#04x}" if actual >= 0 else "nothing"
    raise VerifyError(
        f"verify failed at {address + at:#06x}: wrote {expected:#04x}, read back "
        f"{read}. The board is NOT flashed: run again; if it fails at the same "
        "address, the chip's flash is worn or the bootloader is damaged",
        address + at, expected, actual,
    )
