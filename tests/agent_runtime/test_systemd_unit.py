"""The shipped systemd units: what the issue asks of them, and systemd's own linter."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import AgentError
from agent.reboot import request_reboot
from agent.update.guard import SLOTS
from testbed.units import unit_settings
from tests.packaging.wheels import PIP, build_wheel, clean_env

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "agent" / "systemd"
VERIFIED = ("simpul-agent.service", "simpul-reboot.path", "simpul-reboot.service")
# docs/updates.md's layout on the box.
ROOT = "/opt/simpul"
CURRENT = "current"
DATA = "/var/lib/simpul"


def _settings(name):
    return unit_settings(UNITS / name)


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


def _paths(line):
    """The absolute paths among a command line's words."""
    return [w for w in line.split() if w.startswith("/")]


def test_agent_unit_runs_the_update_slots_with_the_guard_first():
    s = _settings("simpul-agent.service")
    (start,) = s["ExecStart"]
    assert start.split()[0] == f"{ROOT}/{CURRENT}/bin/simpul-agent"
    (pre,) = s["ExecStartPre"]
    assert _paths(pre)[:2] == ["/usr/bin/python3", f"{ROOT}/guard.py"]
    assert f"--root {ROOT}" in pre and f"--data {DATA}" in pre
    # The same lines as docs/updates.md shows for the slots.
    docs = (REPO / "docs" / "updates.md").read_text()
    assert f"ExecStart={start}\n" in docs and f"ExecStartPre={pre}\n" in docs
    assert s["StartLimitIntervalSec"] == ["0"]  # the guard decides, not the start limit
    # Writes go to the data dir and the update root only.
    assert s["ProtectSystem"] == ["strict"]
    assert sorted(s["ReadWritePaths"][0].split()) == sorted([DATA, ROOT])


def _scratch_root(base: Path) -> Path:
    """A file system root holding what the units run: the wheel in slot-a's venv,
    `current` -> slot-a, the guard beside the slots, and the system's own units."""
    root = base / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copy(Path("/usr/bin/python3").resolve(), root / "usr/bin/python3")
    shutil.copy(Path("/bin/sh").resolve(), root / "usr/bin/sh")
    slots = root / ROOT.lstrip("/")
    slot = slots / SLOTS[0]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(slot)], check=True)
    subprocess.run([*PIP, "--python", str(slot / "bin" / "python"), "install", "--no-deps",
                    str(build_wheel(base))], check=True, env=clean_env(),
                   timeout=300)  # fmt: skip
    (slots / CURRENT).symlink_to(SLOTS[0])
    # Where an install puts the guard (agent.update.slots), taken from the wheel.
    (installed_guard,) = slot.glob("lib/python*/site-packages/agent/update/guard.py")
    shutil.copy(installed_guard, slots / "guard.py")
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for name in (*VERIFIED, "simpul-modules.conf"):
        shutil.copy(UNITS / name, units / name)
    return root


def test_units_pass_systemd_analyze_verify_with_the_wheel_installed(tmp_path):
    root = _scratch_root(tmp_path)
    for line in (*_settings("simpul-agent.service")["ExecStartPre"],
                 *_settings("simpul-agent.service")["ExecStart"]):
        for path in _paths(line):
            if not path.startswith(("/etc/", DATA)):  # config and data come at provisioning
                assert (root / path.lstrip("/")).exists(), path
    out = subprocess.run(["systemd-analyze", "verify", f"--root={root}", *VERIFIED],
                         cwd=root / "etc" / "systemd" / "system", capture_output=True,
                         text=True, timeout=120)  # fmt: skip
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
