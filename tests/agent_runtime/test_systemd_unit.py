"""The shipped systemd units: what the issue asks of them, and systemd's own linter."""

import subprocess
from pathlib import Path

import pytest

from agent.errors import AgentError
from agent.reboot import request_reboot

UNITS = Path(__file__).resolve().parents[2] / "agent" / "systemd"


def _settings(name):
    out = {}
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_agent_unit_is_notify_with_watchdog_and_two_capabilities():
    s = _settings("simpul-agent.service")
    assert s["Type"] == ["notify"]
    assert s["WatchdogSec"] == ["30s"]
    assert s["NotifyAccess"] == ["main"]
    assert set(s["CapabilityBoundingSet"][0].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(s["AmbientCapabilities"][0].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert s["User"] == ["simpul"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["StandardOutput"] == s["StandardError"] == ["journal"]
    assert "@reboot" in s["SystemCallFilter"][1]  # the agent itself may not reboot
    assert s["RuntimeDirectory"] == ["simpul"]  # where reboot requests go


def test_reboot_path_unit_watches_the_agents_request_file():
    assert _settings("simpul-reboot.path")["PathExists"] == ["/run/simpul/reboot-request"]
    assert "systemctl reboot" in _settings("simpul-reboot.service")["ExecStart"][0]


def test_units_pass_systemd_analyze_verify(tmp_path):
    # verify wants ExecStart to exist: point it at a stand-in for the installed script.
    fake = tmp_path / "simpul-agent"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    for name in ("simpul-agent.service", "simpul-reboot.path", "simpul-reboot.service"):
        text = (UNITS / name).read_text().replace("/usr/local/bin/simpul-agent", str(fake))
        (tmp_path / name).write_text(text)
    names = [str(tmp_path / n) for n in
             ("simpul-agent.service", "simpul-reboot.path", "simpul-reboot.service")]  # fmt: skip
    out = subprocess.run(["systemd-analyze", "verify", *names], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr


def test_reboot_request_is_written_atomically(tmp_path):
    target = tmp_path / "reboot-request"
    assert request_reboot("operator  asked\nfrom the dashboard", target) == target
    assert target.read_text() == "operator asked from the dashboard\n"
    assert [p.name for p in tmp_path.iterdir()] == ["reboot-request"]


def test_reboot_request_without_the_runtime_directory_is_a_plain_error(tmp_path):
    with pytest.raises(AgentError, match="cannot request a reboot"):
        request_reboot("x", tmp_path / "missing" / "reboot-request")
