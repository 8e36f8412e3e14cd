"""ESP32 through esptool: what can be checked without an ESP32. The image check uses
esptool's own image reader on an image written by esptool's own image writer; the
connect path runs esptool for real against a pty on which no chip answers."""

import os
from pathlib import Path

import pytest

from firmware_bridge.flasher.errors import ImageError
from firmware_bridge.flasher.esp import check_image
from tests.flasher.helpers import run_cli


@pytest.fixture
def esp32_app(tmp_path: Path) -> Path:
    from esptool.bin_image import ESP32FirmwareImage, ImageSegment

    image = ESP32FirmwareImage()
    image.entrypoint = 0x40080000
    segment = ImageSegment(0x3FFB0000, b"simpul-sensor-board" * 8)
    segment.name = ".dram0.data"  # the writer names segments as an ELF would
    image.segments = [segment]
    path = tmp_path / "app.bin"
    image.save(str(path))
    return path


def test_an_esptool_written_image_is_accepted(esp32_app: Path) -> None:
    assert check_image(str(esp32_app), "esp32") == esp32_app.read_bytes()


def test_an_image_for_another_chip_or_no_image_is_refused(esp32_app: Path,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not an esp32s3 application image"):
        check_image(str(esp32_app), "esp32s3")
    junk = tmp_path / "sensor.hex"
    junk.write_text(":00000001FF\n")
    with pytest.raises(ImageError, match="not an esp32 application image"):
        check_image(str(junk), "esp32")


@pytest.mark.slow
def test_the_wrong_option_and_a_bad_image_stop_before_the_port(tmp_path: Path) -> None:
    done = run_cli("flash", "--port", "/dev/null", "--hex", "x.hex", "--board", "esp32")
    assert done.returncode == 3 and "use --bin, not --hex" in done.stderr
    junk = tmp_path / "firmware.bin"
    junk.write_bytes(b"\x0c\x94" * 64)
    done = run_cli("flash", "--port", str(tmp_path / "ttyUSB9"), "--bin", str(junk),
                   "--board", "esp32")
    assert done.returncode == 3 and "not an esp32 application image" in done.stderr


@pytest.mark.slow
def test_no_chip_on_the_port_ends_in_advice(esp32_app: Path) -> None:
    master, slave = os.openpty()
    try:
        done = run_cli("flash", "--port", os.ttyname(slave), "--bin", str(esp32_app),
                       "--board", "esp32")
    finally:
        os.close(master)
        os.close(slave)
    assert done.returncode == 5, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("simpul-field: no answer from an ESP32 bootloader")
    assert "hold BOOT, tap EN/RST" in last and "check the cable" in last
    assert "flashed" not in done.stdout
