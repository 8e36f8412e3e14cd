"""An interrupted write never leaves a half bundle: the target holds nothing, the old
complete bundle, or the new complete one. Three ways to interrupt: an injected failure
after each file, kill -9 of a writer paused after each file, and a card that really
fills up (a 64 KiB tmpfs in a private mount namespace)."""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from simpul_field.provision.bundle import (
    MARKER,
    Bundle,
    bundle_files,
    installed_device,
    render_config,
    write_bundle,
)
from simpul_field.provision.errors import TargetError
from tests.field.helpers import CLI, REPO, env, is_whole_or_absent

NEW = Bundle(device_id="box-new", kind="wifi", mqtt_url="mqtt://127.0.0.1:1883",
             password="new-password", claim_code="NEWW-NEWW-NEWW")
OLD = Bundle(device_id="box-old", kind="wifi", mqtt_url="mqtt://127.0.0.1:1883",
             password="old-password", claim_code="OLDD-OLDD-OLDD")
CA = b"-----BEGIN CERTIFICATE-----\n" + b"A" * 64 + b"\n-----END CERTIFICATE-----\n"
STEPS = ["agent.toml", "mqtt.password", "ca.pem", MARKER]


def files(bundle: Bundle, target: Path):  # type: ignore[no-untyped-def]
    return bundle_files(bundle, render_config(bundle, str(target), "/tmp/d", True), CA)


class Injected(OSError):
    pass


@pytest.mark.parametrize("replace", [False, True], ids=["fresh", "replacing"])
@pytest.mark.parametrize("after", STEPS)
def test_injected_failure_after_each_file(tmp_path: Path, after: str, replace: bool) -> None:
    target = tmp_path / "simpul"
    if replace:
        write_bundle(target, OLD.device_id, files(OLD, target))

    def fail(name: str) -> None:
        if name == after:
            raise Injected(28, "No space left on device")

    with pytest.raises(TargetError, match="No space left"):
        write_bundle(target, NEW.device_id, files(NEW, target), force=True, hook=fail)
    assert is_whole_or_absent(target)
    assert installed_device(target) == ("box-old" if replace else None)
    assert not target.exists() or (target / "mqtt.password").read_text() == "old-password\n"
    assert [p.name for p in tmp_path.iterdir()] == (["simpul"] if replace else [])


WRITER = """
import os, sys, time
from pathlib import Path
from simpul_field.provision.bundle import Bundle, bundle_files, write_bundle
from tests.field.test_interrupted import NEW, files
target = Path(sys.argv[1])
def pause(name):
    if name == sys.argv[2]:
        print("paused", flush=True)
        time.sleep(60)
write_bundle(target, NEW.device_id, files(NEW, target), force=True, hook=pause)
"""


def wait_line(proc: "subprocess.Popen[str]", want: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == want:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"writer exited {proc.returncode} before {want!r}")
    raise AssertionError(f"no {want!r} from the writer")


@pytest.mark.slow
@pytest.mark.parametrize("replace", [False, True], ids=["fresh", "replacing"])
def test_kill_9_mid_write(tmp_path: Path, replace: bool) -> None:
    target = tmp_path / "simpul"
    seen: List[str] = []
    for step in STEPS:
        if replace and not target.exists():
            write_bundle(target, OLD.device_id, files(OLD, target))
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), step], cwd=REPO,
                                env=env(), stdout=subprocess.PIPE, text=True)
        try:
            wait_line(proc, "paused")
            # The writer is stopped mid-way with some files on disk: the target is
            # still what it was, and a reader sees no half bundle.
            assert is_whole_or_absent(target)
            assert installed_device(target) == ("box-old" if replace else None)
            partial = list(tmp_path.glob(".simpul.partial-*"))
            assert len(partial) == 1 and (partial[0] / step).exists()
        finally:
            proc.kill()
            proc.wait()
        assert is_whole_or_absent(target)
        assert installed_device(target) == ("box-old" if replace else None)
        seen.append(step)
    assert seen == STEPS
    # The next write sweeps the dead writers' leftovers and completes.
    write_bundle(target, NEW.device_id, files(NEW, target), force=True)
    assert installed_device(target) == "box-new"
    assert [p.name for p in tmp_path.iterdir()] == ["simpul"]


@pytest.mark.slow
def test_card_fills_up_mid_write(tmp_path: Path) -> None:
    """A real ENOSPC: the CA does not fit on a 64 KiB card after the config did."""
    bundle = tmp_path / "box.bundle.json"
    bundle.write_text(NEW.to_json())
    big_ca = tmp_path / "ca.pem"
    big_ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + b"B" * 200_000
                       + b"\n-----END CERTIFICATE-----\n")
    card = tmp_path / "card"
    card.mkdir()
    cli = " ".join(CLI)
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {card} && "
        f"{cli} provision install {bundle} --target {card}/simpul --site S --lat 1 --lon 2 "
        f"--ca {big_ca} --label {tmp_path}/label.svg; echo rc=$?; "
        f"{sys.executable} -c 'import json, os, sys; print(json.dumps(os.listdir(sys.argv[1])))'"
        f" {card}"
    )
    out = subprocess.run(["unshare", "--mount", "sh", "-c", script], cwd=tmp_path,
                         env=env(), capture_output=True, text=True, timeout=60)
    lines = out.stdout.strip().splitlines()
    assert "rc=7" in lines, out.stdout + out.stderr
    assert "No space left on device" in out.stderr
    assert "Traceback" not in out.stderr
    assert json.loads(lines[-1]) == [], "nothing, not even a temp dir, is left on the card"



@pytest.mark.parametrize("replace", [False, True], ids=["fresh", "replacing"])
def test_read_back_catches_a_card_that_loses_data(tmp_path: Path, replace: bool) -> None:
    """A medium that drops what it was given (fusefat 0.1a loses a directory's files on
    rename) must not pass for provisioned: the read-back refuses it, the old bundle stays."""
    target = tmp_path / "simpul"
    if replace:
        write_bundle(target, OLD.device_id, files(OLD, target))

    def lose(name: str) -> None:
        if name == MARKER:
            (next(tmp_path.glob(".simpul.partial-*")) / "mqtt.password").write_bytes(b"")

    with pytest.raises(TargetError, match="reading the bundle back found it incomplete"):
        write_bundle(target, NEW.device_id, files(NEW, target), force=True, hook=lose)
    assert installed_device(target) == ("box-old" if replace else None)
    assert [p.name for p in tmp_path.iterdir()] == (["simpul"] if replace else [])
