"""`simpul-agent doctor`: one plain line per check, exit 1 on any failure."""

import subprocess
from pathlib import Path

from testbed.harness import free_port, tool

GOOD = """
[device]
device_id = "park-01"
data_dir = "{data}"

[broker]
url = "mqtt://127.0.0.1:{port}"
password_file = "{secret}"

[control]
tier_interface = "lo"

[[collectors]]
type = "pms5003"
name = "air"
port = "{serial}"
"""


def doctor(config: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([tool("simpul-agent"), "doctor", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def test_doctor_names_each_failure_in_one_line(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    serial = tmp_path / "ttyFAKE"
    config = tmp_path / "agent.toml"
    config.write_text(GOOD.format(data=tmp_path / "data", port=free_port(), secret=secret,
                                  serial=serial))
    out = doctor(config)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert "ok   config:" in lines[0]
    assert any(ln.startswith("FAIL broker: cannot reach 127.0.0.1:") for ln in lines)
    assert any(ln.startswith(f"FAIL serial ports: serial port {serial} is missing") for ln in lines)
    assert any(ln == "ok   traffic control: tc can shape lo" for ln in lines)
    assert "Traceback" not in out.stdout + out.stderr


def test_doctor_names_the_line_and_field_of_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[device]\ndevice_id = "park-01"\n\n[publish]\nsample_interval_s = "x"\n')
    out = doctor(config)
    assert out.returncode == 1
    assert out.stdout.startswith("FAIL config:")
    assert "line 5: publish.sample_interval_s" in out.stdout
    config.write_text('[device\ndevice_id = "park-01"\n')
    out = doctor(config)
    assert out.returncode == 1 and "not valid TOML" in out.stdout and "line 1" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
