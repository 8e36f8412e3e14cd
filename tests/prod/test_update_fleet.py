"""The fleet's side of updates: the signing CLI and the staged rollout's decisions."""

import argparse
import zipfile
from pathlib import Path

import pytest

from fleet_api.updates import bundles as updates


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    updates.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_keygen_sign_verify_publish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "signing.pem"
    assert cli("update", "keygen", "--out", str(key)) == 0
    public = capsys.readouterr().out.strip()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert cli("update", "keygen", "--out", str(key)) == 1  # never overwrites a key
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name in ("simpul-0.3.0-py3-none-any.whl", "dep-1-py3-none-any.whl"):
        with zipfile.ZipFile(wheels / name, "w") as zf:
            zf.writestr("a", name)
    bundle = tmp_path / "b.tar"
    assert cli("update", "sign", "--key", str(key), "--wheels", str(wheels), "--version",
               "0.4.0", "--out", str(bundle)) == 1  # no simpul wheel of that version
    assert cli("update", "sign", "--key", str(key), "--wheels", str(wheels), "--version",
               "0.3.0", "--out", str(bundle)) == 0
    assert cli("update", "verify", "--public-key", public, str(bundle)) == 0
    assert cli("update", "keygen", "--out", str(tmp_path / "other.pem")) == 0
    other = capsys.readouterr().out.strip().splitlines()[-1]
    capsys.readouterr()
    assert cli("update", "verify", "--public-key", other, str(bundle)) == 1
    assert "does not trust" in capsys.readouterr().err
    served = tmp_path / "served"
    assert cli("update", "publish", "--public-key", public, "--dir", str(served),
               str(bundle)) == 0
    assert (served / "simpul-agent-0.3.0.tar").read_bytes() == bundle.read_bytes()


def test_waves_and_stop_on_failures() -> None:
    devices = [f"box-{i:03d}" for i in range(200)]
    plan = updates.waves(devices)
    assert [len(w) for w in plan] == [2, 18, 80, 100]
    assert [d for wave in plan for d in wave] == devices
    assert updates.next_action(plan, {}) == ("send", plan[0])
    assert updates.next_action(plan, {"box-000": "succeeded"}) == ("wait", [])
    ok = {d: "succeeded" for d in plan[0]}
    assert updates.next_action(plan, ok) == ("send", plan[1])
    second = dict(ok, **{d: "succeeded" for d in plan[1][:16]},
                  **{d: "failed" for d in plan[1][16:]})  # 2 of 18 failed: over 10 %
    assert updates.next_action(plan, second) == ("stop", plan[1][16:])
    third = dict(ok, **{d: "succeeded" for d in plan[1][:17]}, **{plan[1][17]: "failed"})
    assert updates.next_action(plan, third) == ("send", plan[2])  # 1 of 18 is under
    assert updates.next_action(plan, {d: "succeeded" for d in devices}) == ("done", [])
    assert updates.waves(["a"]) == [["a"]]
