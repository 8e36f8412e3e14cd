"""The signed update bundle: format, signing and verification (no installing).

Part of the contract: the fleet signs (`simpul-fleet update sign`) and the box verifies
with these same functions, so the two can never disagree on what a valid bundle is.
Refusals raise simpul_wire.errors.UpdateError (SignatureError for an untrusted one).

A bundle is an uncompressed tar (the wheels inside are compressed already):

    manifest.json    {"format": 1, "package": "simpul", "version": "0.2.0",
                      "requirement": "simpul[agent]==0.2.0", "created_at": "...",
                      "files": [{"name": "simpul-0.2.0-py3-none-any.whl",
                                 "sha256": "...", "size": 12345}, ...]}
    manifest.sig     {"key_id": "3f2a...", "signature": base64(ed25519(manifest.json bytes))}
    wheels/NAME      each file the manifest names, and nothing else

The signature covers the manifest's exact bytes, and the manifest covers every wheel by
its sha256, so one signature check decides whether anything in the tar is used at all.
The box reads only the two small members before the check; after it, each wheel is
hashed while it is copied out, and a member the manifest does not name is refused.
"""

import base64
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from simpul_wire.errors import SignatureError, UpdateError

FORMAT = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
WHEELS = "wheels/"
MAX_SMALL_MEMBER = 1024 * 1024
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.+-]+\.whl$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([a-z0-9.+-]*)$")


@dataclass(frozen=True)
class FileEntry:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    requirement: str
    files: Tuple[FileEntry, ...]
    created_at: str
    package: str = "simpul"


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def decode_public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise UpdateError(f"public key {text[:12]}...: not base64") from exc
    if len(raw) != 32:
        raise UpdateError(f"public key {text[:12]}...: {len(raw)} bytes, an ed25519 key is 32")
    return raw


def parse_manifest(data: bytes) -> Manifest:
    """Manifest bytes → Manifest; UpdateError names the bad field."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise UpdateError(f"manifest: not JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise UpdateError(f"manifest: format must be {FORMAT}")
    version = raw.get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise UpdateError("manifest: version must look like 1.2.3")
    requirement = raw.get("requirement")
    if not isinstance(requirement, str) or not requirement.startswith("simpul"):
        raise UpdateError("manifest: requirement must name the simpul package")
    files = []
    seen = set()
    for item in raw.get("files") or []:
        name, digest, size = item.get("name"), item.get("sha256"), item.get("size")
        if not isinstance(name, str) or not _WHEEL_NAME.match(name) or name in seen:
            raise UpdateError(f"manifest: file name {name!r} is not a plain, unique .whl name")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise UpdateError(f"manifest: {name}: sha256 must be 64 hex digits")
        if not isinstance(size, int) or size < 0:
            raise UpdateError(f"manifest: {name}: size must be a non-negative integer")
        seen.add(name)
        files.append(FileEntry(name, digest, size))
    if not files:
        raise UpdateError("manifest: lists no wheels")
    return Manifest(version=version, requirement=requirement, files=tuple(files),
                    created_at=str(raw.get("created_at", "")), package=str(raw.get("package")))


def verify_signature(manifest: bytes, signature: bytes, trusted: Iterable[bytes]) -> str:
    """Check manifest.sig against the trusted raw public keys; return the key id used."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = json.loads(signature.decode("utf-8"))
        wanted, blob = str(sig["key_id"]), base64.b64decode(sig["signature"], validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"manifest.sig is malformed: {exc}") from exc
    keys: Dict[str, bytes] = {key_id(k): k for k in trusted}
    if not keys:
        raise SignatureError("this box trusts no update key ([update] public_keys is empty)")
    public = keys.get(wanted)
    if public is None:
        raise SignatureError(f"signed by key {wanted}, which this box does not trust")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(blob, manifest)
    except InvalidSignature as exc:
        raise SignatureError(f"bad signature from key {wanted}: the manifest was altered "
                             "or signed by another key") from exc
    return wanted


def _small_member(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError as exc:
        raise SignatureError(f"bundle has no {name}") from exc
    if not info.isfile() or info.size > MAX_SMALL_MEMBER:
        raise SignatureError(f"bundle member {name} is not a small regular file")
    handle = tar.extractfile(info)
    assert handle is not None
    return handle.read()


def open_verified(bundle: Path, trusted: Iterable[bytes]) -> Manifest:
    """Verify the signature and parse the manifest; nothing is written anywhere."""
    try:
        with tarfile.open(bundle, "r:") as tar:
            manifest_bytes = _small_member(tar, MANIFEST)
            signature = _small_member(tar, SIGNATURE)
    except (OSError, tarfile.TarError) as exc:
        raise SignatureError(f"{bundle}: not a readable bundle: {exc}") from exc
    verify_signature(manifest_bytes, signature, trusted)
    return parse_manifest(manifest_bytes)


def extract_wheels(bundle: Path, manifest: Manifest, dest: Path) -> List[Path]:
    """Copy out each wheel the (verified) manifest names, checking size and sha256."""
    wanted = {f"{WHEELS}{f.name}": f for f in manifest.files}
    out: List[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(bundle, "r:") as tar:
        for info in tar.getmembers():
            if info.name in (MANIFEST, SIGNATURE):
                continue
            entry = wanted.pop(info.name, None)
            if entry is None or not info.isfile():
                raise UpdateError(f"bundle member {info.name!r} is not in the signed manifest")
            if info.size != entry.size:
                raise UpdateError(f"{entry.name}: {info.size} bytes, the manifest says "
                                  f"{entry.size}")
            handle = tar.extractfile(info)
            assert handle is not None
            digest = hashlib.sha256()
            target = dest / entry.name
            with open(target, "wb") as fh:
                while True:
                    chunk = handle.read(1 << 16)
                    if not chunk:
                        break
                    digest.update(chunk)
                    fh.write(chunk)
            if digest.hexdigest() != entry.sha256:
                target.unlink()
                raise UpdateError(f"{entry.name}: sha256 differs from the signed manifest")
            out.append(target)
    if wanted:
        raise UpdateError(f"bundle lacks {', '.join(sorted(wanted))}")
    return out


# -- the signing side (used by `simpul-fleet update sign`) ----------------------------
def build_manifest(wheels: List[Path], version: str, extra: str = "agent",
                   now: Optional[datetime] = None) -> bytes:
    files = []
    for path in sorted(wheels, key=lambda p: p.name):
        data = path.read_bytes()
        files.append({"name": path.name, "sha256": hashlib.sha256(data).hexdigest(),
                      "size": len(data)})
    body = {"format": FORMAT, "package": "simpul", "version": version,
            "requirement": f"simpul[{extra}]=={version}" if extra else f"simpul=={version}",
            "created_at": (now or datetime.now(timezone.utc)).isoformat(), "files": files}
    data = json.dumps(body, indent=1, sort_keys=True).encode()
    parse_manifest(data)  # the signer refuses what a box would refuse
    return data


def sign_manifest(manifest: bytes, private_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UpdateError("the signing key is not an ed25519 private key")
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    sig = {"key_id": key_id(public),
           "signature": base64.b64encode(key.sign(manifest)).decode()}
    return json.dumps(sig).encode()


def write_bundle(out: Path, manifest: bytes, signature: bytes, wheels: List[Path]) -> None:
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST, manifest), (SIGNATURE, signature)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for path in sorted(wheels, key=lambda p: p.name):
            tar.add(path, arcname=f"{WHEELS}{path.name}", recursive=False)
    tmp.replace(out)


def generate_key() -> Tuple[bytes, str]:
    """A new ed25519 key: (private PEM, public key as base64 of the raw 32 bytes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    return pem, base64.b64encode(public).decode()
