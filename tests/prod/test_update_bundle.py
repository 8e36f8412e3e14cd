"""The signed bundle: signature before anything else, hashes for every wheel."""

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import List

import pytest

from agent.control.builtin import CommandError
from agent.update.command import update_command
from agent.update.slots import apply_bundle, version_key
from simpul_wire import bundle as b
from simpul_wire.config import parse_config

pytestmark = pytest.mark.py39


def fake_wheels(where: Path, version: str = "9.0.0") -> List[Path]:
    where.mkdir(parents=True, exist_ok=True)
    out = []
    for name in (f"simpul-{version}-py3-none-any.whl", "dep-1.0-py3-none-any.whl"):
        with zipfile.ZipFile(where / name, "w") as zf:
            # A fixed timestamp: two calls must give the same bytes, or a test that
            # rebuilds the wheels trips over the sha256 check before the one it means.
            zf.writestr(zipfile.ZipInfo("x.txt", date_time=(2026, 1, 1, 0, 0, 0)), name * 50)
        out.append(where / name)
    return out


def make_bundle(tmp: Path, key_pem: bytes, version: str = "9.0.0") -> Path:
    wheels = fake_wheels(tmp / f"w-{version}", version)
    manifest = b.build_manifest(wheels, version)
    out = tmp / f"bundle-{version}.tar"
    b.write_bundle(out, manifest, b.sign_manifest(manifest, key_pem), wheels)
    return out


@pytest.fixture
def keys():  # type: ignore[no-untyped-def]
    return b.generate_key(), b.generate_key()


def box_config(tmp: Path, public: str) -> str:
    path = tmp / "agent.toml"
    path.write_text(f'[device]\ndevice_id = "box-u"\ndata_dir = "{tmp / "data"}"\n'
                    f'[update]\nroot = "{tmp / "opt"}"\npublic_keys = ["{public}"]\n')
    return str(path)


def test_good_bundle_verifies_and_extracts(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    (pem, public), _ = keys
    bundle = make_bundle(tmp_path, pem)
    manifest = b.open_verified(bundle, [b.decode_public_key(public)])
    assert manifest.version == "9.0.0" and manifest.requirement == "simpul[agent]==9.0.0"
    got = b.extract_wheels(bundle, manifest, tmp_path / "out")
    assert sorted(p.name for p in got) == sorted(f.name for f in manifest.files)
    assert all(p.read_bytes() == (tmp_path / "w-9.0.0" / p.name).read_bytes() for p in got)


def test_untrusted_key_and_altered_manifest_are_refused(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    (pem, public), (other_pem, _) = keys
    trusted = [b.decode_public_key(public)]
    with pytest.raises(b.SignatureError, match="does not trust"):
        b.open_verified(make_bundle(tmp_path, other_pem, "9.0.1"), trusted)
    # Same key id, manifest changed after signing: the signature no longer matches.
    good = make_bundle(tmp_path, pem, "9.0.2")
    with tarfile.open(good) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    altered = json.loads(members[b.MANIFEST])
    altered["version"] = "9.9.9"
    members[b.MANIFEST] = json.dumps(altered).encode()
    forged = tmp_path / "forged.tar"
    with tarfile.open(forged, "w:") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(b.SignatureError, match="bad signature"):
        b.open_verified(forged, trusted)
    with pytest.raises(b.SignatureError, match="trusts no update key"):
        b.open_verified(good, [])
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    with pytest.raises(b.SignatureError, match="not a readable bundle"):
        b.open_verified(tmp_path / "junk.tar", trusted)


def test_swapped_wheel_and_extra_member_are_refused(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    (pem, public), _ = keys
    wheels = fake_wheels(tmp_path / "w")
    manifest = b.build_manifest(wheels, "9.0.0")
    sig = b.sign_manifest(manifest, pem)
    wheels[1].write_bytes(b"evil" * 10)  # a different file under a signed name
    bad = tmp_path / "swapped.tar"
    b.write_bundle(bad, manifest, sig, wheels)
    parsed = b.open_verified(bad, [b.decode_public_key(public)])  # the manifest is fine
    with pytest.raises(b.UpdateError, match=r"bytes, the manifest says|sha256"):
        b.extract_wheels(bad, parsed, tmp_path / "out")
    extra = tmp_path / "extra.tar"
    fresh = fake_wheels(tmp_path / "w2")
    b.write_bundle(extra, manifest, sig, fresh)
    with tarfile.open(extra, "a:") as tar:
        info = tarfile.TarInfo("wheels/../../etc/cron.d/x")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(b.UpdateError, match="not in the signed manifest"):
        b.extract_wheels(extra, b.open_verified(extra, [b.decode_public_key(public)]),
                         tmp_path / "out2")


@pytest.mark.parametrize("field,value,match", [
    ("format", 2, "format"), ("version", "../1", "version"),
    ("requirement", "evil==1", "requirement"), ("files", [], "lists no wheels"),
    ("files", [{"name": "../x.whl", "sha256": "0" * 64, "size": 1}], "plain"),
    ("files", [{"name": "x.whl", "sha256": "zz", "size": 1}], "sha256"),
])
def test_manifest_fields_are_checked(field: str, value: object, match: str) -> None:
    raw = {"format": 1, "version": "1.0.0", "requirement": "simpul[agent]==1.0.0",
           "files": [{"name": "x.whl", "sha256": "a" * 64, "size": 3}]}
    raw[field] = value
    with pytest.raises(b.UpdateError, match=match):
        b.parse_manifest(json.dumps(raw).encode())


def test_bad_signature_installs_nothing(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    (_, public), (other_pem, _) = keys
    path = box_config(tmp_path, public)
    config = parse_config(Path(path).read_text())
    bundle = make_bundle(tmp_path, other_pem)
    handler = update_command(config, path)
    with pytest.raises(CommandError, match="does not trust"):
        handler({"path": str(bundle)})
    with pytest.raises(b.SignatureError):
        apply_bundle(config, path, str(bundle))
    assert not (tmp_path / "opt").exists()  # no slot, no wheels, no state
    assert not (tmp_path / "data" / "update-state.json").exists()
    with pytest.raises(CommandError, match=r"args\.url"):
        handler({})


def test_version_order() -> None:
    assert version_key("0.10.0") > version_key("0.9.9") > version_key("0.9")
    assert version_key("1.0.0rc1") == (1, 0, 0)
