"""Secrets the fleet must keep for a while, sealed with a key that is not in the database.

A credential rotation's new broker password must reach the box through the
`rotate_credentials` command, which is re-sent until the broker takes it (the broker
may be down when the rotation starts). So the fleet keeps the password in the command's
stored args until the command is done, sealed (Fernet: AES-128-CBC + HMAC-SHA256) with a
key in a 0600 file beside the fleet's broker password (Settings.sealing_key_path), and
erases it once the command is final. The database, its WAL, a backup or a dump of it,
and the PostgreSQL server never hold the password in clear; with the key file as well, a
thief gets only the passwords of rotations still under way.

A sealed value is stored as {"sealed": "<Fernet token>"}; `open_args` is applied only to
commands named in commands.SEALED_COMMANDS, which the API never lets a caller create
directly, so nobody can have the fleet unseal a value of their choosing.
"""

import logging
import os
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from cryptography.fernet import Fernet, InvalidToken

from fleet_api.errors import FleetError

log = logging.getLogger("simpul.sealing")

SEALED = "sealed"


class SealingError(FleetError):
    """No key to seal with, or a sealed value the key cannot open; the message says why."""


def _read_key(path: Path) -> bytes:
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError as exc:
        raise SealingError(f"{path} does not hold a sealing key") from exc
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, created 0600 on first use. Two fleet processes may race to
    create it: the key is written to a private temp file and linked into place, so a
    reader never sees half a key and the loser of the race uses the winner's."""
    if path.exists():
        return _read_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
        log.info("created the sealing key %s", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


class Sealer:
    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._fernet: Optional[Fernet] = None
        self._lock = threading.Lock()

    def _box(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                try:
                    self._fernet = Fernet(load_or_create_key(self.key_path))
                except OSError as exc:
                    raise SealingError(f"cannot use the sealing key {self.key_path}: "
                                       f"{exc.strerror}") from exc
            return self._fernet

    def seal(self, secret: str) -> Dict[str, str]:
        return {SEALED: self._box().encrypt(secret.encode()).decode()}

    def open(self, value: Any) -> str:
        if not is_sealed(value):
            raise SealingError("the value is not sealed")
        try:
            return self._box().decrypt(value[SEALED].encode()).decode()
        except InvalidToken as exc:
            raise SealingError(f"the sealing key {self.key_path} does not open this value "
                               "(the key file was replaced or lost)") from exc


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SEALED} and isinstance(value[SEALED], str)


# The serve process's sealer, set once at start (fleet_api/cli.py): the API seals, and
# the API and the worker open what they publish.
_sealer: Optional[Sealer] = None


def use(key_path: Optional[Path]) -> None:
    global _sealer
    _sealer = Sealer(key_path) if key_path is not None else None


def sealer() -> Sealer:
    if _sealer is None:
        raise SealingError("this fleet process has no sealing key: start `simpul-fleet "
                           "serve` with --broker-data DIR (the key lives in DIR/sealing.key)")
    return _sealer


def open_args(args: Dict[str, Any]) -> Dict[str, Any]:
    """The args as the box must get them: every sealed value opened."""
    if not any(is_sealed(v) for v in args.values()):
        return args
    box = sealer()
    return {k: box.open(v) if is_sealed(v) else v for k, v in args.items()}


def erase(args: Dict[str, Any]) -> Dict[str, Any]:
    """The args with every sealed value replaced by None: the secret is not kept."""
    return {k: None if is_sealed(v) else v for k, v in args.items()}
