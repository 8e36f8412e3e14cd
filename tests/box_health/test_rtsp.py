"""Camera reachability by RTSP OPTIONS, against the simulator's responder."""

import subprocess
import sys

import pytest

from agent.collectors import rtsp
from agent.collectors.base import Accumulator
from agent.collectors.rtsp import (
    RtspCollector,
    RtspConfig,
    build_options,
    options,
    parse_reply,
    public_url,
)
from agent.errors import CollectorError
from simulator.rtsp import Responder, reply_for
from tests.box_health.conftest import parse_sample

pytestmark = pytest.mark.py39


def test_sample_config_parses():
    config = parse_sample(rtsp)
    assert isinstance(config, RtspConfig)
    assert [c.name for c in config.cameras] == ["gate", "park"]
    assert config.cameras[0].url == "rtsp://192.168.10.20:554/stream1"


def test_config_refuses_other_schemes():
    with pytest.raises(ValueError, match="rtsp://host"):
        RtspConfig(type="rtsp", cameras=[{"name": "gate", "url": "http://10.0.0.2/"}])


def test_request_bytes_carry_no_credentials():
    assert build_options("rtsp://admin:secret@10.0.0.2:8554/live?ch=1", 7) == (
        b"OPTIONS rtsp://10.0.0.2:8554/live?ch=1 RTSP/1.0\r\nCSeq: 7\r\n"
        b"User-Agent: simpul-agent\r\n\r\n"
    )
    assert public_url("rtsp://u:p@[fe80::1]/x") == "rtsp://[fe80::1]/x"
    assert public_url("rtsp://cam") == "rtsp://cam/"


@pytest.mark.parametrize(
    ("data", "code", "public"),
    [
        # Hikvision-style and the simulator's replies.
        (b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nPublic: OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, "
         b"TEARDOWN, SET_PARAMETER, GET_PARAMETER\r\nDate:  Mon, Nov 23 2026 07:00:00 GMT\r\n\r\n",
         200, "OPTIONS, DESCRIBE, PLAY, PAUSE, SETUP, TEARDOWN, SET_PARAMETER, GET_PARAMETER"),
        (b"RTSP/1.0 401 Unauthorized\r\ncseq:3\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n",
         401, None),
    ],
)  # fmt: skip
def test_parse_reply(data, code, public):
    reply = parse_reply(data, 3)
    assert reply.code == code
    assert reply.headers.get("public") == public


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "not an RTSP reply: 'HTTP/1.1 200 OK'"),
        (b"RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n", "reply CSeq '9' does not match 3"),
        (b"RTSP/1.0 OK\r\n\r\n", "not an RTSP reply"),
    ],
)
def test_parse_reply_refuses(data, message):
    with pytest.raises(CollectorError, match=message):
        parse_reply(data, 3)


def test_responder_replies_echo_the_cseq():
    reply = reply_for(b"OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 42\r\n\r\n", "ok", 200)
    assert parse_reply(reply, 42).code == 200
    assert parse_reply(reply_for(b"PLAY rtsp://x/ RTSP/1.0\r\nCSeq: 2\r\n\r\n", "ok", 200), 2) \
        .code == 405


def _gather(cameras, timeout_s=0.5):
    collector = RtspCollector(RtspConfig(type="rtsp", cameras=cameras, timeout_s=timeout_s))
    collector.refresh()
    acc = Accumulator()
    collector.gather(acc)
    return acc


def test_cameras_up_and_down_at_once(closed_port):
    with Responder("ok") as ok, Responder("status", 401) as auth, \
            Responder("status", 503) as broken, Responder("silent") as hung, \
            Responder("close") as closer, Responder("http") as web:  # fmt: skip
        url = "rtsp://admin:secret@127.0.0.1:{}/stream1"
        acc = _gather([
            {"name": "gate", "url": url.format(ok.port)},
            {"name": "door", "url": url.format(auth.port)},
            {"name": "lobby", "url": url.format(broken.port)},
            {"name": "park", "url": url.format(hung.port)},
            {"name": "yard", "url": url.format(closer.port)},
            {"name": "road", "url": url.format(web.port)},
            {"name": "roof", "url": url.format(closed_port)},
        ])
        assert ok.server.requests == 1
    status = {k: (v.state, v.reason) for k, v in acc.sources.items()}
    assert status == {
        "camera_gate": ("ok", None),
        "camera_door": ("ok", None),
        "camera_lobby": ("unavailable", "camera answered 503 Service Unavailable"),
        "camera_park": ("unavailable", f"127.0.0.1:{hung.port} gave no RTSP reply within 0.5 s"),
        "camera_yard": ("unavailable",
                        f"127.0.0.1:{closer.port} closed the connection without a reply"),
        "camera_road": ("unavailable", "not an RTSP reply: 'HTTP/1.1 200 OK'"),
        "camera_roof": ("unavailable", f"127.0.0.1:{closed_port} refused the connection"),
        "cctv": ("ok", None),
    }
    assert acc.metrics["cctv_cameras_up"] == 2
    assert set(acc.metrics) == {"cctv_cameras_up", "camera_gate_rtt_ms", "camera_door_rtt_ms"}
    assert "secret" not in repr(acc.sources)


def test_before_the_first_probe_every_camera_is_unavailable():
    collector = RtspCollector(RtspConfig(type="rtsp", cameras=[{"name": "gate",
                                                                 "url": "rtsp://127.0.0.1:1/"}]))
    acc = Accumulator()
    collector.gather(acc)
    assert acc.sources["camera_gate"].reason == "no probe has finished yet"
    assert acc.metrics == {}


@pytest.mark.slow
def test_simpul_sim_rtsp_command_serves_options():
    proc = subprocess.Popen([sys.executable, "-m", "simulator.cli", "rtsp", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("rtsp://127.0.0.1:") and line.endswith(" mode=ok\n"), line
        url = line.split()[0]
        reply, rtt = options(url + "cam1", timeout_s=2)
        assert reply.code == 200
        assert reply.headers["public"] == "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
        assert rtt < 2000
    finally:
        proc.terminate()
        proc.wait(timeout=5)
