"""Intel HEX images (through intelhex) cut into flash pages."""

import pytest

from firmware_bridge.flasher.errors import ImageError
from firmware_bridge.flasher.image import check_fits, load_hex, parse_hex

# Two records of 4 bytes at 0x0000 and 0x0084 (a gap across the first page boundary).
HEX = (":040000000C94340028\n"
       ":04008400010203046E\n"
       ":00000001FF\n")


@pytest.mark.py39
def test_pages_pad_gaps_with_erased_bytes() -> None:
    image = parse_hex(HEX)
    assert (image.size, image.end, image.segments) == (8, 0x88, ((0, 4), (0x84, 0x88)))
    pages = image.pages(128)
    assert [p.address for p in pages] == [0x00, 0x80]
    assert pages[0].data == bytes.fromhex("0c943400") + b"\xff" * 124
    assert pages[1].data == b"\xff" * 4 + bytes.fromhex("01020304") + b"\xff" * 120


@pytest.mark.py39
def test_pages_skip_pages_the_image_leaves_out() -> None:
    image = parse_hex(":020200000102F9\n:00000001FF\n")  # 2 bytes at 0x200
    assert [p.address for p in image.pages(128)] == [0x200]


@pytest.mark.py39
@pytest.mark.parametrize("text, says", [
    (":040000000C94340029\n:00000001FF\n", "not a valid Intel HEX"),   # bad checksum
    ("hello\n", "not a valid Intel HEX"),
    (":00000001FF\n", "holds no data"),
])
def test_bad_images_are_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ImageError, match=says):
        parse_hex(text, "sensor.hex")


@pytest.mark.py39
def test_an_image_that_reaches_the_bootloader_is_refused() -> None:
    image = parse_hex(":027E000001027D\n:00000001FF\n")  # 2 bytes at 0x7E00
    with pytest.raises(ImageError, match="has room for 30720"):
        check_fits(image, 30720, "nano")


@pytest.mark.py39
def test_missing_and_binary_files(tmp_path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_hex(str(tmp_path / "nope.hex"))
    binary = tmp_path / "sensor.bin"
    binary.write_bytes(b"\x0c\x94\xff\xfe")
    with pytest.raises(ImageError, match="not Intel HEX text"):
        load_hex(str(binary))
