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


def record(address: int, data: bytes) -> str:
    """One Intel HEX data record, checksum included."""
    raw = bytes([len(data), address >> 8 & 0xFF, address & 0xFF, 0]) + data
    return f":{(raw + bytes([-sum(raw) & 0xFF])).hex().upper()}\n"


EOF_RECORD = ":00000001FF\n"
SKETCH = record(0x0000, bytes(range(16))) + record(0x0010, bytes(range(16, 32)))
# Optiboot's place on an ATmega328P: 0x7E00-0x7FFF, its version word at 0x7FFE.
OPTIBOOT_RECORDS = "".join(record(0x7E00 + 16 * i, bytes([i]) * 16) for i in range(31)) \
    + record(0x7FF0, bytes([0x55]) * 14) + record(0x7FFE, b"\x04\x04")


@pytest.mark.py39
@pytest.mark.parametrize("board, max_size", [("uno", 32256), ("nano", 30720)])
def test_an_export_with_the_bootloader_is_named_as_such(board: str, max_size: int) -> None:
    path = "/home/tech/sketch/build/sketch.ino.with_bootloader.hex"
    image = parse_hex(SKETCH + OPTIBOOT_RECORDS + EOF_RECORD, path)
    with pytest.raises(ImageError) as err:
        check_fits(image, max_size, board, 32768)
    message = str(err.value)
    assert message.startswith(f"{path} contains a bootloader (records at 0x7E00-0x7FFF")
    assert "use /home/tech/sketch/build/sketch.ino.hex" in message
    assert "room for" not in message and "\n" not in message


@pytest.mark.py39
def test_a_bootloader_under_another_name_and_a_bootloader_alone() -> None:
    image = parse_hex(SKETCH + OPTIBOOT_RECORDS + EOF_RECORD, "firmware.hex")
    with pytest.raises(ImageError, match=r"firmware.hex contains a bootloader .* "
                                         "without with_bootloader"):
        check_fits(image, 32256, "uno", 32768)
    alone = parse_hex(OPTIBOOT_RECORDS + EOF_RECORD, "optiboot.hex")
    with pytest.raises(ImageError, match=r"optiboot.hex is a bootloader.s own HEX .*ISP"):
        check_fits(alone, 32256, "uno", 32768)
    # Named like an export but without any bootloader records: it is just the sketch.
    check_fits(parse_hex(SKETCH + EOF_RECORD, "s.ino.with_bootloader.hex"), 32256, "uno", 32768)


@pytest.mark.py39
def test_a_sketch_that_is_too_big_is_still_too_big() -> None:
    big = "".join(record(16 * i, b"\x11" * 16) for i in range(0x7900 // 16)) + EOF_RECORD
    with pytest.raises(ImageError, match="reaches byte 30976, but nano has room for 30720"):
        check_fits(parse_hex(big, "big.hex"), 30720, "nano", 32768)


@pytest.mark.py39
def test_overlapping_records_are_named_by_line_and_address() -> None:
    # Like Debian's optiboot_atmega328.hex: the code's last record runs into the version.
    text = (record(0x7E00, b"\x11" * 16) + record(0x7FF0, bytes(range(16)))
            + record(0x7FFE, b"\x04\x04") + EOF_RECORD)
    with pytest.raises(ImageError) as err:
        parse_hex(text, "optiboot.hex")
    message = str(err.value)
    assert message.startswith(
        "optiboot.hex has overlapping records: line 2 (0x7FF0-0x7FFF) and line 3 "
        "(0x7FFE-0x7FFF) both write 0x7FFE-0x7FFF, with different bytes (0e 0f, then 04 04)")
    assert "bootloader's own HEX" in message and "ISP programmer" in message
    # In a sketch: the same bytes twice, e.g. two builds pasted together.
    twice = SKETCH + record(0x0008, bytes(range(8, 16))) + EOF_RECORD
    with pytest.raises(ImageError, match=r"line 1 \(0x0000-0x000F\) and line 3 \(0x0008-0x000F\) "
                                         "both write 0x0008-0x000F, with the same bytes: "
                                         "the file is damaged"):
        parse_hex(twice, "sketch.hex")


def test_debians_optiboot_hex_overlap_is_explained() -> None:
    """Not a py39 test: the chroot has no arduino-core-avr (.ci/apt/flasher.txt)."""
    from tests.flasher.helpers import OPTIBOOT

    assert OPTIBOOT.exists(), "arduino-core-avr is not installed (.ci/apt/flasher.txt)"
    with pytest.raises(ImageError, match=r"line 32 \(0x7FF0-0x7FFF\) and line 35 "
                                         r"\(0x7FFE-0x7FFF\) both write 0x7FFE-0x7FFF"):
        load_hex(str(OPTIBOOT))
