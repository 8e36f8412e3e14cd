"""Bundles without a fleet: the config they render loads, files and modes, the target
checks, the marker, and the wire and config additions for claims."""

import json
import stat
from pathlib import Path

import pytest

from simpul_field.provision.bundle import (
    MARKER,
    Bundle,
    Site,
    bundle_files,
    check_target,
    installed_device,
    parse_bundle,
    render_config,
    write_bundle,
)
from simpul_field.provision.errors import InputError, TargetError
from simpul_wire.config import parse_config
from simpul_wire.models import Claim, claim_epoch, decode, encode

pytestmark = pytest.mark.py39

BUNDLE = Bundle(device_id="box-abc123", kind="wifi", mqtt_url="mqtts://broker.example:8883",
                password="s3cret-\"quoted\"", claim_code="K7M2-Q9XR-4T0B",
                fleet_url="https://fleet.example")
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("claim", [None, Site(), Site("Halte \"Pasar\" Baru\n", "Kota Barat",
                                                         -6.2, 106.8)])
@pytest.mark.parametrize("has_ca", [False, True])
def test_rendered_config_loads(claim: Site, has_ca: bool) -> None:
    text = render_config(BUNDLE, "/etc/simpul", "/var/lib/simpul", has_ca, claim=claim,
                         managed='[[collectors]]\ntype = "synthetic"\nname = "x"\n')
    config = parse_config(text)
    assert config.device.device_id == "box-abc123"
    assert config.broker.url == "mqtts://broker.example:8883"
    assert config.broker.password_file == "/etc/simpul/mqtt.password"
    assert config.broker.ca_file == ("/etc/simpul/ca.pem" if has_ca else None)
    assert [c.name for c in config.collectors] == ["x"]
    if claim is None:
        assert config.claim is None
    else:
        assert config.claim is not None
        assert config.claim.code == "K7M2-Q9XR-4T0B"
        assert (config.claim.site, config.claim.lat) == (claim.site, claim.lat)


def test_bundle_file_round_trip_and_refusals() -> None:
    assert parse_bundle(BUNDLE.to_json()) == BUNDLE
    for text, why in (("{", "not JSON"), ('{"format": "other"}', "format"),
                      ('{"format": "simpul-bundle/1", "device_id": "x"}', "missing")):
        with pytest.raises(InputError, match=why):
            parse_bundle(text, "b.json")


def test_write_bundle_files_modes_and_marker(tmp_path: Path) -> None:
    target = tmp_path / "simpul"
    text = render_config(BUNDLE, str(target), str(tmp_path / "data"), True)
    write_bundle(target, BUNDLE.device_id, bundle_files(BUNDLE, text, CA))
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "agent.toml", "ca.pem",
                                                         "mqtt.password"]
    assert stat.S_IMODE((target / "mqtt.password").stat().st_mode) == 0o600
    assert (target / "mqtt.password").read_text() == BUNDLE.password + "\n"
    assert (target / "ca.pem").read_bytes() == CA
    assert installed_device(target) == "box-abc123"
    assert not list(tmp_path.glob(".simpul.*")), "no temp dir left beside the target"
    # A file changed after the write: the marker no longer vouches for the bundle.
    (target / "agent.toml").write_text("# edited\n")
    assert installed_device(target) is None
    assert json.loads((target / MARKER).read_text())["device_id"] == "box-abc123"


def test_target_checks(tmp_path: Path) -> None:
    files = bundle_files(BUNDLE, "x", None)
    with pytest.raises(TargetError, match="is the card mounted"):
        check_target(tmp_path / "no-such-card" / "simpul", force=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(TargetError, match="holds other files"):
        write_bundle(busy, "box-a", files)
    assert sorted(p.name for p in busy.iterdir()) == ["photo.jpg"]
    # An empty directory (a fresh mount point's subdir) takes a bundle.
    empty = tmp_path / "empty"
    empty.mkdir()
    write_bundle(empty, "box-a", files)
    assert installed_device(empty) == "box-a"
    with pytest.raises(TargetError, match="already holds the bundle of box-a"):
        write_bundle(empty, "box-b", files)
    write_bundle(empty, "box-b", files, force=True)
    assert installed_device(empty) == "box-b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]


def test_claim_wire_model_is_additive() -> None:
    old = decode(Claim, b'{"schema_version": 1, "device_id": "box-a", "claim_code": '
                        b'"ABCD-EFGH-JKMN", "ts": "2026-01-01T00:00:00Z"}')
    assert old.site is None
    full = Claim(device_id="box-a", claim_code="ABCD-EFGH-JKMN", site="Taman", lat=-6.2,
                 lon=106.8, district="Barat")
    assert decode(Claim, encode(full)) == full
    assert claim_epoch("ABCD-EFGH-JKMN") != claim_epoch("ABCD-EFGH-JKMP")
    assert len(claim_epoch("x" * 64)) == 16
