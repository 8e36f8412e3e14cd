"""Firmware images: Intel HEX parsed with the `intelhex` package, cut into flash pages.

A page holds `page_size` bytes; bytes the image leaves out inside a page are 0xFF, the
value of erased flash, so a page written and read back compares whole.

Two kinds of file are refused with their own advice: an image that carries a bootloader
(the Arduino IDE's `sketch.ino.with_bootloader.hex`, or a bootloader's own HEX), which
cannot be written through the bootloader it would overwrite; and a file whose records
overlap, named by line and address.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from firmware_bridge.flasher.errors import ImageError

ERASED = 0xFF
WITH_BOOTLOADER = ".with_bootloader.hex"  # the Arduino IDE's "Export compiled Binary"
# Where an AVR bootloader section may start: the top 256..4096 bytes of flash (BOOTSZ).
BOOT_SECTION_BYTES = (256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class Page:
    address: int   # byte address, a multiple of the page size
    data: bytes


@dataclass(frozen=True)
class FlashImage:
    source: str
    size: int                    # bytes the image defines
    end: int                     # one past its highest address
    segments: Tuple[Tuple[int, int], ...]

    data: bytes                  # bytes 0..end, gaps filled with 0xFF
    defined: bytes               # 1 where the image defines the byte, else 0

    def pages(self, page_size: int) -> List[Page]:
        """Every page that holds at least one byte of the image, in address order."""
        if page_size <= 0 or page_size & (page_size - 1):
            raise ImageError(f"page size {page_size} is not a power of two")
        out = []
        for start in range(0, self.end, page_size):
            if not any(self.defined[start : start + page_size]):
                continue
            chunk = self.data[start : start + page_size]
            out.append(Page(start, chunk + bytes([ERASED]) * (page_size - len(chunk))))
        return out


def parse_hex(text: str, source: str = "<hex>") -> FlashImage:
    """Parse Intel HEX text (pure: no file access). ImageError says what is wrong."""
    import io

    from intelhex import AddressOverlapError, IntelHex, IntelHexError

    ih = IntelHex()
    try:
        ih.loadhex(io.StringIO(text))
    except AddressOverlapError as exc:
        raise ImageError(overlap_message(text, source) or
                         f"{source} has overlapping records ({exc}): the file is damaged; "
                         "rebuild it or get a fresh copy") from exc
    except (IntelHexError, ValueError) as exc:
        raise ImageError(f"{source} is not a valid Intel HEX file: {exc}") from exc
    segments = tuple((int(a), int(b)) for a, b in ih.segments())
    if not segments:
        raise ImageError(f"{source} holds no data: is it the right file?")
    end = segments[-1][1]
    data = bytearray([ERASED]) * end
    defined = bytearray(end)
    for addr in ih.addresses():
        data[addr] = ih[addr]
        defined[addr] = 1
    return FlashImage(source, len(ih), end, segments, bytes(data), bytes(defined))


def load_hex(path: str) -> FlashImage:
    """Read and parse an Intel HEX file from disk."""
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file; check the --hex path") from exc
    except UnicodeDecodeError as exc:
        raise ImageError(
            f"{path} is not Intel HEX text (a .bin or .elf?); give the .hex the build made"
        ) from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_hex(text, path)


def _data_records(text: str) -> List[Tuple[int, int, bytes]]:
    """(line number, absolute address, data) of each data record; other lines skipped."""
    out: List[Tuple[int, int, bytes]] = []
    offset = 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line.startswith(":"):
            continue
        try:
            raw = bytes.fromhex(line[1:])
        except ValueError:
            continue
        if len(raw) < 5 or len(raw) < 5 + raw[0]:
            continue
        kind, data = raw[3], raw[4 : 4 + raw[0]]
        if kind == 0:
            out.append((number, offset + (raw[1] << 8 | raw[2]), data))
        elif kind == 2 and len(data) == 2:
            offset = (data[0] << 8 | data[1]) * 16
        elif kind == 4 and len(data) == 2:
            offset = (data[0] << 8 | data[1]) << 16
    return out


def _span(first: int, last: int) -> str:
    return f"0x{first:04X}" if first == last else f"0x{first:04X}-0x{last:04X}"


def overlap_message(text: str, source: str) -> Optional[str]:
    """Which records overlap, in one line: lines, their ranges, the shared bytes."""
    records = _data_records(text)
    owner: Dict[int, Tuple[int, int]] = {}   # address -> (line, byte)
    pairs: Dict[Tuple[int, int], List[Tuple[int, int, int]]] = {}
    spans = {number: (address, address + len(data) - 1) for number, address, data in records}
    for number, address, data in records:
        for i, byte in enumerate(data):
            if address + i in owner:
                first_line, first_byte = owner[address + i]
                pairs.setdefault((first_line, number), []).append(
                    (address + i, first_byte, byte))
            else:
                owner[address + i] = (number, byte)
    if not pairs:
        return None
    (line_a, line_b), shared = next(iter(pairs.items()))
    before = bytes(b for _, b, _ in shared)
    after = bytes(b for _, _, b in shared)
    same = ("with the same bytes" if before == after else
            f"with different bytes ({before[:8].hex(' ')}, then {after[:8].hex(' ')})")
    more = len(pairs) - 1
    text_out = (f"{source} has overlapping records: line {line_a} ({_span(*spans[line_a])}) "
                f"and line {line_b} ({_span(*spans[line_b])}) both write "
                f"{_span(shared[0][0], shared[-1][0])}, {same}"
                + (f", and {more} more overlap{'s' if more > 1 else ''}" if more else ""))
    lowest = min(address for _, address, _ in records)
    if lowest >= 0x1000:  # a sketch starts with its vector table at 0x0000
        return text_out + (f"; it starts at 0x{lowest:04X}, not 0x0000: a bootloader's own "
                           "HEX, and a broken one; bootloaders are written with an ISP "
                           "programmer, not through the bootloader: flash the sketch's .hex")
    return text_out + ": the file is damaged or two images were joined; rebuild it or get "\
        "a fresh copy"


def bootloader_section(image: FlashImage, flash_size: int) -> Optional[Tuple[int, int]]:
    """(first, last) address of the image's records in a bootloader section, or None.

    A run of records that starts where a bootloader section starts (the top 256..4096
    bytes of `flash_size`), after a gap or at the image's start, is a bootloader.
    """
    if flash_size <= 0:
        return None
    starts = {flash_size - n for n in BOOT_SECTION_BYTES}
    for start, _end in image.segments:
        if start in starts:
            return start, image.end - 1
    return None


def check_fits(image: FlashImage, max_size: int, board: str, flash_size: int = 0) -> None:
    """Refuse an image that carries a bootloader, or would overwrite the bootloader.

    `flash_size` (the chip's whole flash) lets it tell a bootloader from a big sketch.
    """
    section = bootloader_section(image, flash_size)
    named = image.source.endswith(WITH_BOOTLOADER)
    if section is not None or (named and image.end > max_size):
        raise ImageError(_bootloader_message(image, section))
    if image.end > max_size:
        raise ImageError(
            f"{image.source} reaches byte {image.end}, but {board} has room for {max_size}: "
            "the image is for another board, or too big for this one"
        )


def _bootloader_message(image: FlashImage, section: Optional[Tuple[int, int]]) -> str:
    source = image.source
    where = (f" (records at {_span(*section)}, the bootloader section at the top of flash)"
             if section else "")
    if section is not None and image.segments[0][0] >= section[0]:
        return (f"{source} is a bootloader's own HEX{where}: it cannot be written through "
                "the bootloader (an ISP programmer writes bootloaders); flash the sketch's "
                ".hex instead")
    if source.endswith(WITH_BOOTLOADER):
        sketch = source[: -len(WITH_BOOTLOADER)] + ".hex"
        use = f"use {sketch} (the same build, without with_bootloader)"
    else:
        use = ("use the sketch's .hex without with_bootloader (the Arduino IDE's "
               "Export compiled Binary writes both)")
    return (f"{source} contains a bootloader{where}: the board keeps its own bootloader, "
            f"so flash the sketch alone: {use}")
