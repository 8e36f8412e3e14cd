"""Bad inputs: each ends with one plain line and its exit code, never a traceback, and a
card or fleet left as it was (the target is checked before anything is registered)."""

import json
import os
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from testbed.harness import Fleet, free_port
from tests.field.helpers import CLI, env, field, one_line_error

ONLINE = ["provision", "--site", "Halte", "--kind", "wifi", "--district", "Barat",
          "--lat", "-6.2", "--lon", "106.8", "--no-check"]


def online(device_id: str, target: Path, *extra: str) -> List[str]:
    return [*ONLINE, "--device-id", device_id, "--target", str(target), *extra]


def test_inputs_refused_before_any_network(tmp_path: Path) -> None:
    card = tmp_path / "card"
    card.mkdir()
    target = card / "simpul"
    unused = f"http://127.0.0.1:{free_port()}"
    cases = [
        (online("box-a", target), None, 2, "no token"),
        (online("box-a", target), "", 2, "no token"),
        (online("Box_A", target), "t", 2, "--device-id 'Box_A'"),
        (online("box-a", target, "--lat", "91"), "t", 2, "--lat 91.0 is outside"),
        (["provision", "--device-id", "box-a", "--target", str(target)], "t", 2,
         "missing --site, --kind, --district, --lat, --lon"),
        (online("box-a", tmp_path / "unmounted" / "simpul"), "t", 7, "is the card mounted"),
        (online("box-a", target, "--ca", str(tmp_path / "none.pem")), "t", 2,
         "cannot read the CA file"),
        (["provision", "install", str(tmp_path / "none.json"), "--target", str(target),
          "--site", "S", "--lat", "1", "--lon", "2"], None, 2, "cannot read the bundle"),
        (online("box-a", target), "t", 6, "cannot reach the fleet"),
    ]
    (tmp_path / "typo.toml").write_text('[[collectors]]\ntype = "synthetic"\nnmae = "x"\n')
    cases.append((online("box-a", target, "--collectors", str(tmp_path / "typo.toml")), "t", 2,
                  "unknown key 'nmae' (typo?)"))
    (tmp_path / "junk.json").write_text("{not json")
    cases.append((["provision", "install", str(tmp_path / "junk.json"), "--target",
                   str(target), "--site", "S", "--lat", "1", "--lon", "2"], None, 2,
                  "not a bundle file"))
    for args, token, code, says in cases:
        done = field(args, tmp_path, unused, token)
        line = one_line_error(done)
        assert done.returncode == code, (args, line)
        assert says in line, (args, line)
    assert list(card.iterdir()) == []


@pytest.mark.slow
def test_fleet_refusals(scratch: Path, fleet: Fleet) -> None:
    tech = fleet.create_token("technician")
    viewer = fleet.create_token("viewer")
    (scratch / "card").mkdir()
    target = scratch / "card" / "simpul"

    done = field(online("box-a", target), scratch, fleet.url, "spl_wrong")
    assert done.returncode == 4 and "refused the token (401)" in one_line_error(done)
    done = field(online("box-a", target), scratch, fleet.url, viewer)
    assert done.returncode == 4 and "403" in one_line_error(done)
    assert not target.exists()

    fleet.register("box-a")
    done = field(online("box-a", target), scratch, fleet.url, tech)
    assert done.returncode == 5
    assert "device box-a is already registered (409)" in one_line_error(done)
    assert not target.exists()

    # A card that is already complete is not overwritten without --force, and the
    # device is not registered when the card would refuse it.
    assert field(online("box-b", target), scratch, fleet.url, tech).returncode == 0
    done = field(online("box-c", target), scratch, fleet.url, tech)
    assert done.returncode == 7 and "already holds the bundle of box-b" in one_line_error(done)
    with fleet.api() as api:
        assert api.get("/api/v1/devices/box-c").status_code == 404
    done = field(["provision", "batch", "--count", "0", "--kind", "wifi", "--out",
                  str(scratch / "b")], scratch, fleet.url, tech)
    assert done.returncode == 2 and "--count" in one_line_error(done)

    # The office disk fills up mid-batch: it says which boxes were left without a bundle.
    out = scratch / "small"
    out.mkdir()
    script = (f"mount -t tmpfs -o size=16k tmpfs {out} && {' '.join(CLI)} provision batch "
              f"--count 20 --kind wifi --out {out}")
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=scratch,
                          env=env(fleet.url, tech), capture_output=True, text=True, timeout=60)
    line = one_line_error(done)
    assert done.returncode == 7 and "No space left on device" in line, line
    assert "boxes are registered without one (deregister them): box-" in line


@pytest.mark.slow
def test_read_only_card(tmp_path: Path) -> None:
    """A card mounted read-only (a private mount namespace) is refused in plain words."""
    bundle = tmp_path / "b.bundle.json"
    bundle.write_text(json.dumps({"format": "simpul-bundle/1", "device_id": "box-a",
                                  "kind": "wifi", "mqtt_url": "mqtt://127.0.0.1:1",
                                  "password": "p", "claim_code": "AAAA-BBBB-CCCC",
                                  "fleet_url": None}))
    card = tmp_path / "card"
    card.mkdir()
    script = (f"mount -t tmpfs -o ro,size=64k tmpfs {card} && {' '.join(CLI)} provision "
              f"install {bundle} --target {card}/simpul --site S --lat 1 --lon 2")
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr
    assert "is not writable" in one_line_error(done)
    assert os.listdir(card) == []


def test_check_keeps_trying_while_the_fleet_is_unreachable(tmp_path: Path) -> None:
    started = time.monotonic()
    done = field(["provision", "check", "box-a", "--timeout", "2"], tmp_path,
                 f"http://127.0.0.1:{free_port()}", "t")
    assert time.monotonic() - started >= 2, "it waited out the timeout, not the first error"
    assert done.returncode == 8
    assert "waiting for box-a: fleet unreachable" in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("simpul-field: box-a is not online after 2s: fleet unreachable")
    assert "Traceback" not in done.stderr
