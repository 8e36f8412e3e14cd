"""Reset strategies on ports with and without modem lines; the CLI's shape."""

import os

import pytest
import serial

from firmware_bridge.flasher.boards import PROFILES, get_profile
from firmware_bridge.flasher.flash import no_sync_advice
from firmware_bridge.flasher.reset import dtr_rts_pulse
from simpul_field.cli import build_parser


@pytest.mark.py39
def test_a_pty_has_no_modem_lines_so_no_pulse() -> None:
    master, slave = os.openpty()
    try:
        with serial.Serial(os.ttyname(slave), 115200, timeout=0.1) as port:
            assert dtr_rts_pulse(port, low_s=0.01, settle_s=0.0) is False
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.py39
def test_a_port_with_modem_lines_gets_the_pulse() -> None:
    port = serial.serial_for_url("loop://", timeout=0.1)
    try:
        assert dtr_rts_pulse(port, low_s=0.01, settle_s=0.0) is True
        assert port.dtr and port.rts  # left asserted, as after avrdude's pulse
    finally:
        port.close()


@pytest.mark.py39
@pytest.mark.parametrize("board, says", [
    ("uno", "no sync at 115200: try --board nano-old"),
    ("nano-old", "no sync at 57600: try --board nano,"),
    ("pro-mini", "no sync at 57600: try --board uno, press reset"),
])
def test_no_sync_advice_names_another_board(board: str, says: str) -> None:
    assert no_sync_advice(get_profile(board), PROFILES[board].baud, True).startswith(says)


@pytest.mark.py39
def test_every_profile_is_consistent() -> None:
    for profile in PROFILES.values():
        for alt in profile.alternatives:
            assert alt in PROFILES, f"{profile.name} suggests unknown {alt}"
        if profile.protocol == "stk500v1":
            assert len(profile.signature) == 3 and profile.page_size == 128
            assert 0 < profile.max_size < 32768
    with pytest.raises(KeyError, match="choose one of uno, nano"):
        get_profile("leonardo")


@pytest.mark.py39
def test_the_cli_refuses_bad_usage_with_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["flash", "--port", "/dev/ttyUSB0"])
    assert exited.value.code == 2
    assert "one of the arguments --hex --bin is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["flash", "--port", "p", "--hex", "f", "--board", "leo"])


@pytest.mark.py39
@pytest.mark.parametrize("wrote, back, address, says", [
    (b"\x0c\x94\x34", b"\x0c\x95\x34", 0x81, "wrote 0x94, read back 0x95"),
    (b"\x0c\x94\x34", b"\x0c\x94", 0x82, "wrote 0x34, read back nothing"),
])
def test_verify_names_the_first_differing_byte(wrote, back, address, says) -> None:
    from firmware_bridge.flasher.errors import VerifyError
    from firmware_bridge.flasher.flash import _compare

    _compare(0x80, wrote, wrote)  # equal pages pass
    with pytest.raises(VerifyError, match=says) as failed:
        _compare(0x80, wrote, back)
    assert failed.value.address == address
    assert "NOT flashed" in str(failed.value)
