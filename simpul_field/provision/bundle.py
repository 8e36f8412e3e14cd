"""Provisioning bundles: what a box needs on its card, and the atomic write of it.

A *bundle file* (`<device_id>.bundle.json`, mode 0600) is what the office prepares and
the technician carries: the device's identity, MQTT credentials and claim code.

An *installed bundle* is a directory on the card (the target):

    agent.toml       the agent config (agent.config.parse_config accepts it)
    mqtt.password    the device's broker password, mode 0600
    ca.pem           the broker's CA, when one was given
    device.pem       with --tls: the box's certificate from the fleet's CA (CN = device id)
    device.key       with --tls: its private key, mode 0600 (the fleet never sees it)
    COMPLETE         written last: device id and a SHA-256 of every file above

The directory is built beside the target under a hidden name, every file fsynced, the
marker written last, and then renamed into place: a writer killed at any moment leaves
either no target, the previous complete bundle, or the new complete one; never a half.
The bundle is then read back against the marker before the old one is dropped.
"""

import errno
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from simpul_field.provision.errors import InputError, TargetError

BUNDLE_FORMAT = "simpul-bundle/1"
MARKER = "COMPLETE"
CONFIG = "agent.toml"
PASSWORD = "mqtt.password"
CA = "ca.pem"
CERT = "device.pem"
KEY = "device.key"

# Called with each file name just after it is written (tests pause or fail here).
WriteHook = Callable[[str], None]


@dataclass(frozen=True)
class Bundle:
    device_id: str
    kind: str
    mqtt_url: str
    password: str
    claim_code: Optional[str] = None
    fleet_url: Optional[str] = None
    format: str = BUNDLE_FORMAT
    # --tls: the broker's certificate listener, the box's certificate and key.
    tls_url: Optional[str] = None
    certificate: Optional[str] = None
    key: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Site:
    site: Optional[str] = None
    district: Optional[str] = None
    lat: Optional[float] = None
    lon: Optional[float] = None


def parse_bundle(text: str, source: str = "bundle") -> Bundle:
    """A bundle file's text as a Bundle; InputError names what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{source}: not a bundle file (not JSON: {exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != BUNDLE_FORMAT:
        raise InputError(f"{source}: not a bundle file (format is not {BUNDLE_FORMAT})")
    try:
        return Bundle(**raw)
    except TypeError as exc:
        raise InputError(f"{source}: bundle file has missing or unknown fields: {exc}") from exc


def _toml_str(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX included).
    return json.dumps(value, ensure_ascii=False)


def render_config(bundle: Bundle, box_dir: str, data_dir: str, has_ca: bool,
                  claim: Optional[Site] = None, managed: str = "") -> str:
    """The agent.toml text. `box_dir` is where the bundle directory is on the box;
    `claim` adds a [claim] section (an offline-prepared bundle); `managed` is TOML with
    the managed sections ([publish], [[collectors]], ...), appended as given."""
    lines = [
        "# Written by simpul-field provision. The [device], [broker] and [claim] sections",
        "# are this box's own; the fleet may replace the managed sections below them.",
        "[device]",
        f"device_id = {_toml_str(bundle.device_id)}",
        f"data_dir = {_toml_str(data_dir)}",
        "",
        "[broker]",
        f"url = {_toml_str(bundle.tls_url or bundle.mqtt_url)}",
        f"username = {_toml_str(bundle.device_id)}",
        f"password_file = {_toml_str(f'{box_dir}/{PASSWORD}')}",
    ]
    if has_ca:
        lines.append(f"ca_file = {_toml_str(f'{box_dir}/{CA}')}")
    if bundle.certificate:
        lines += [f"cert_file = {_toml_str(f'{box_dir}/{CERT}')}",
                  f"key_file = {_toml_str(f'{box_dir}/{KEY}')}"]
    if claim is not None and bundle.claim_code:
        lines += ["", "[claim]", f"code = {_toml_str(bundle.claim_code)}"]
        for key in ("site", "district"):
            value = getattr(claim, key)
            if value is not None:
                lines.append(f"{key} = {_toml_str(value)}")
        for key in ("lat", "lon"):
            number = getattr(claim, key)
            if number is not None:
                lines.append(f"{key} = {float(number)!r}")
    text = "\n".join(lines) + "\n"
    if managed.strip():
        text += "\n" + managed.strip() + "\n"
    return text


def bundle_files(bundle: Bundle, config_text: str, ca_pem: Optional[bytes]
                 ) -> Dict[str, Tuple[bytes, int]]:
    files = {CONFIG: (config_text.encode(), 0o644),
             PASSWORD: (bundle.password.encode() + b"\n", 0o600)}
    if ca_pem is not None:
        files[CA] = (ca_pem, 0o644)
    if bundle.certificate and bundle.key:
        files[CERT] = (bundle.certificate.encode(), 0o644)
        files[KEY] = (bundle.key.encode(), 0o600)
    return files


def _marker(device_id: str, files: Dict[str, Tuple[bytes, int]]) -> bytes:
    sums = {name: hashlib.sha256(data).hexdigest() for name, (data, _mode) in files.items()}
    return (json.dumps({"device_id": device_id, "files": sums}, indent=1, sort_keys=True)
            + "\n").encode()


def installed_device(target: Path) -> Optional[str]:
    """The device id of a complete bundle at `target`, or None (absent or not complete)."""
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        for name, digest in marker["files"].items():
            if hashlib.sha256((target / name).read_bytes()).hexdigest() != digest:
                return None
        return str(marker["device_id"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (vfat on some kernels) refuse fsync on a directory
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask must not widen or narrow it
        except OSError as exc:
            # FAT keeps no modes (EPERM from vfat, ENOSYS from fusefat): the mount's
            # fmask decides (docs/provisioning.md).
            if exc.errno not in (errno.EPERM, errno.ENOSYS, errno.ENOTSUP):
                raise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sweep_partials(target: Path) -> None:
    """Remove hidden directories that killed writers left beside the target."""
    leftovers = [*target.parent.glob(f".{target.name}.partial-*"),
                 *target.parent.glob(f".{target.name}.old-*")]
    for leftover in leftovers:
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(leftover, ignore_errors=True)


def check_target(target: Path, force: bool) -> Optional[str]:
    """Refuse a target that cannot take a bundle, before anything is registered.
    Returns the device id of a complete bundle that --force will replace."""
    parent = target.parent
    if not parent.is_dir():
        raise TargetError(f"{parent} does not exist: is the card mounted?")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TargetError(f"{parent} is not writable: mount the card read-write, "
                          "or use sudo for a rootfs path")
    if not target.exists():
        return None
    if not target.is_dir():
        raise TargetError(f"{target} exists and is not a directory")
    present = installed_device(target)
    if present is not None:
        if not force:
            raise TargetError(f"{target} already holds the bundle of {present}; "
                              "use --force to replace it")
        return present
    if any(target.iterdir()):
        raise TargetError(f"{target} holds other files; give an empty or new directory")
    return None


def write_bundle(target: Path, device_id: str, files: Dict[str, Tuple[bytes, int]],
                 force: bool = False, hook: Optional[WriteHook] = None) -> None:
    """Install files as a complete bundle at target, atomically (see the module doc)."""
    check_target(target, force)
    _sweep_partials(target)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(partial, ignore_errors=True)
        os.mkdir(partial, 0o755)
        names: List[str] = []
        for name, (data, mode) in files.items():
            _write_file(partial / name, data, mode)
            names.append(name)
            if hook:
                hook(name)
        _write_file(partial / MARKER, _marker(device_id, files), 0o644)
        if hook:
            hook(MARKER)
        _fsync_dir(partial)
        if target.exists():
            # An empty directory or a complete bundle (check_target said so): set it
            # aside, put the new one in its place, then drop the old one.
            os.rename(target, old)
        os.rename(partial, target)
        _fsync_dir(target.parent)
        if installed_device(target) != device_id:
            # Read back like a flasher verifies: a card or file system that lost what
            # it was given must not pass for provisioned.
            shutil.rmtree(target, ignore_errors=True)
            raise OSError(errno.EIO, "reading the bundle back found it incomplete: the "
                                     "card or its file system lost data; try another card")
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if old.exists() and not target.exists():
            os.rename(old, target)  # put the previous bundle back
        raise TargetError(f"cannot write the bundle to {target}: "
                          f"{exc.strerror or exc}") from exc


def write_bundle_file(path: Path, bundle: Bundle) -> None:
    """A bundle file for carrying (mode 0600), written atomically."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_file(tmp, bundle.to_json().encode(), 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TargetError(f"cannot write {path}: {exc.strerror or exc}") from exc
