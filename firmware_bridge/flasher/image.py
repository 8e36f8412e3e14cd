"""Firmware images: Intel HEX parsed with the `intelhex` package, cut into flash pages.

A page holds `page_size` bytes; bytes the image leaves out inside a page are 0xFF, the
value of erased flash, so a page written and read back compares whole.
"""

from dataclasses import dataclass
from typing import List, Tuple

from firmware_bridge.flasher.errors import ImageError

ERASED = 0xFF


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

    from intelhex import IntelHex, IntelHexError

    ih = IntelHex()
    try:
        ih.loadhex(io.StringIO(text))
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


def check_fits(image: FlashImage, max_size: int, board: str) -> None:
    """Refuse an image that would overwrite the bootloader."""
    if image.end > max_size:
        raise ImageError(
            f"{image.source} reaches byte {image.end}, but {board} has room for {max_size}: "
            "the image is for another board, or too big for this one"
        )
