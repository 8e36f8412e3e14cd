"""sd_notify against a real unix datagram socket, as systemd binds it."""

import os
import socket

import pytest

from agent import sdnotify
from agent.sdnotify import Notifier, notify, watchdog_interval

pytestmark = pytest.mark.py39


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_ready_and_watchdog_arrive_as_datagrams(listener, monkeypatch):
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(sdnotify, "_default", None)
    assert notify("READY=1", "STATUS=publishing")
    assert sock.recv(4096) == b"READY=1\nSTATUS=publishing"
    for _ in range(3):
        assert notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_abstract_namespace_socket():
    name = f"simpul-notify-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        notifier = Notifier("@" + name)
        assert notifier.notify("READY=1")
        assert sock.recv(64) == b"READY=1"
        notifier.close()
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr(sdnotify, "_default", None)
    assert notify("READY=1") is False


def test_a_vanished_socket_is_counted_not_raised(tmp_path):
    notifier = Notifier(str(tmp_path / "gone.sock"))
    assert notifier.notify("WATCHDOG=1") is False
    assert (notifier.sent, notifier.failed) == (0, 1)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "x"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env, expected):
    assert watchdog_interval(env) == expected


def test_watchdog_interval_for_this_pid():
    env = {"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 5.0
