"""The host's board driver against the simulator's board, in process (no pty)."""

import pytest

from agent.sensors.drivers import BridgeDriver
from firmware_bridge import board_protocol as bp
from simulator.sensors.devices import BoardDevice, Values


class Wire:
    """Collects what the host writes, as a port would."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    def take(self) -> bytes:
        out, self.sent = bytes(self.sent), bytearray()
        return out


def session(board, host, wire, now):
    """Exchange bytes until both sides are quiet; returns the host's readings."""
    readings = []
    pending = b"".join(board.start(now))
    for _ in range(10):
        readings += host.feed(pending, wire, now)
        pending = b"".join(board.on_bytes(wire.take(), now))
        if not pending:
            break
    return readings


def test_handshake_readings_and_config():
    board = BoardDevice(Values({"water_level": 87.5, "noise": 61.2}, vary=False), 1.0)
    host, wire = BridgeDriver(report_interval_ms=500), Wire()
    host.on_open(wire, 0.0)
    assert session(board, host, wire, 0.0) == []
    assert host.version == 1 and board.version == 1
    assert host.units()["water_level"] == "cm"
    assert board.interval_s == 0.5  # the config set reached the board, and was acked
    values = host.feed(b"".join(board.tick(0.0)), wire, 0.0)
    assert values == [{"temperature": 0.0, "humidity": 0.0, "water_level": 87.5, "noise": 61.2}]
    assert host.frames_lost == 0 and host.nacks == 0


def test_readings_before_hello_ask_for_hello():
    board = BoardDevice(Values({"noise": 40.0}, vary=False), 1.0)
    board.start(0.0)
    board.version = 1  # a board that was acked by a host that has since restarted
    host, wire = BridgeDriver(), Wire()
    assert host.feed(b"".join(board.tick(0.0)), wire, 0.0) == []
    host.poll(wire, 0.0)
    (request,) = bp.frames_in(wire.take())
    assert request.type == bp.MSG_HELLO_REQUEST
    answer = board.on_bytes(bp.encode(bp.HelloRequest(), 0), 0.0)
    host.feed(b"".join(answer), wire, 0.0)
    assert host.hello is not None


def test_board_from_the_future_is_refused_politely():
    board = BoardDevice(Values({}, vary=False), 1.0, proto=(3, 4))
    host, wire = BridgeDriver(), Wire()
    host.feed(b"".join(board.start(0.0)), wire, 0.0)
    replies = [bp.parse(bp.decode(f + b"\x00").frame)
               for f in wire.take().split(b"\x00") if f]
    assert bp.Nack(1, bp.NACK_VERSION) in replies
    assert host.version is None


@pytest.mark.parametrize("lost", [1, 5])
def test_lost_frames_are_counted(lost):
    host, wire = BridgeDriver(), Wire()
    frames = b"".join(bp.encode(bp.Heartbeat(i, 0), seq) for i, seq in
                      enumerate([10, 11, 12 + lost]))
    host.feed(frames, wire, 0.0)
    assert host.frames_lost == lost


def test_board_counters_and_mode_label_need_no_attribute_probing():
    """Every driver answers units(), board_counters() and mode_label, so the collector
    and `sensor read` ask them directly; only the board has anything to say."""
    from agent.sensors.drivers import Pms5003Driver, Sds011Driver

    for driver, mode in ((Pms5003Driver("passive"), "passive"),
                         (Sds011Driver("query"), "query")):
        assert driver.units() == {} and driver.board_counters() == {}
        assert driver.mode_label == mode
    board = BoardDevice(Values({"noise": 40.0}, vary=False), 1.0)
    host, wire = BridgeDriver(), Wire()
    host.on_open(wire, 0.0)
    session(board, host, wire, 0.0)
    assert host.mode_label == "board protocol"
    assert host.board_counters() == {"frames_lost": 0}  # no heartbeat yet
    host.board_rx_crc_errors = 3
    assert host.board_counters() == {"frames_lost": 0, "board_rx_crc_errors": 3}
