"""Broker accounts: the fleet database is the source of truth; Mosquitto's password file
is rebuilt from it by one writer under a lock, in Mosquitto's own hash format, and the
broker is told to reload with SIGHUP, debounced (a reload re-checks every client).
"""

import base64
import fcntl
import hashlib
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

log = logging.getLogger("simpul.accounts")

FLEET_USER = "simpul-fleet"
# District brokers bridge in with this account, when the city broker accepts bridges.
BRIDGE_USER = "simpul-bridge"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes for $7$
RELOAD_DEBOUNCE_S = 0.25
ACL_TEMPLATE = Path(__file__).resolve().parent.parent / "broker_config" / "acl"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def mosquitto_hash(password: str, salt: Optional[bytes] = None) -> str:
    """PBKDF2-SHA512 in Mosquitto 2's `$7$iterations$salt$hash` form."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}$" \
           f"{base64.b64encode(digest).decode()}"


def verify_hash(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt),
                              int(iterations))
    return secrets.compare_digest(base64.b64encode(got).decode(), digest)


def _mosquitto_ids() -> Tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam("mosquitto")
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return os.getuid(), os.getgid()


def write_private(path: Path, text: str, for_broker: bool = True) -> None:
    """Write atomically (temp file, fsync, rename); readable by the broker's user only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if for_broker and os.getuid() == 0:
        uid, gid = _mosquitto_ids()
        os.chown(tmp, uid, gid)
    os.replace(tmp, path)


def service_lines(data: Path) -> List[str]:
    """The password-file lines of the fleet's own account and, when this broker accepts
    district bridges (DIR/bridge.hash exists), of the bridge account."""
    lines = [f"{FLEET_USER}:{(data / 'fleet.hash').read_text().strip()}"]
    bridge = data / "bridge.hash"
    if bridge.exists():
        lines.append(f"{BRIDGE_USER}:{bridge.read_text().strip()}")
    return lines


def acl_text(denied: Iterable[str]) -> str:
    """Deny entries are checked before every pattern, so a denied user gets nothing."""
    blocks = [f"user {user}\ntopic deny #\ntopic deny $SYS/#\n" for user in denied]
    text = ACL_TEMPLATE.read_text()
    if blocks:
        text += "\n# Revoked certificate identities (deregistered devices).\n" + "".join(blocks)
    return text


class BrokerAccounts:
    """Rebuilds DIR/passwd from (username, hash) pairs and reloads the broker."""

    def __init__(self, data_dir: str) -> None:
        self.dir = Path(data_dir)
        self.reloads = 0

    def fleet_password(self) -> str:
        return (self.dir / "fleet.password").read_text().strip()

    def fleet_hash(self) -> str:
        return (self.dir / "fleet.hash").read_text().strip()

    def write(self, accounts: Iterable[Tuple[str, str]],
              denied: Optional[Iterable[str]] = None) -> None:
        """Write the password file (the fleet account plus every given device) and, when
        `denied` is given, the ACL: broker_config/acl plus a deny-everything block for each
        revoked certificate identity. A certificate login skips the password file; the CRL
        refuses a revoked certificate, and this deny is the second lock."""
        lines = service_lines(self.dir)
        lines += [f"{user}:{pw_hash}" for user, pw_hash in accounts]
        with open(self.dir / "passwd.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_private(self.dir / "passwd", "\n".join(lines) + "\n")
            if denied is not None:
                write_private(self.dir / "acl", acl_text(denied))

    def broker_pid(self) -> Optional[int]:
        try:
            return int((self.dir / "mosquitto.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def reload_now(self) -> bool:
        pid = self.broker_pid()
        if pid is None:
            log.warning("no broker pid in %s; the new accounts apply at its next start", self.dir)
            return False
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            log.warning("broker pid %s is gone; the new accounts apply at its next start", pid)
            return False
        self.reloads += 1
        return True


class AccountSync:
    """Debounced rebuild-and-reload. Many registrations within the debounce window cost
    one file write and one SIGHUP; `request()` returns a ticket `wait()` blocks on."""

    def __init__(self, accounts: BrokerAccounts,
                 load: Callable[[], List[Tuple[str, str]]],
                 load_denied: Optional[Callable[[], List[str]]] = None) -> None:
        self.accounts = accounts
        self._load = load
        self._load_denied = load_denied
        self._cond = threading.Condition()
        self._requested = 0
        self._applied = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="account-sync", daemon=True)
        self._thread.start()

    def request(self) -> int:
        with self._cond:
            self._requested += 1
            self._cond.notify_all()
            return self._requested

    def wait(self, ticket: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._applied >= ticket, timeout)

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or self._requested > self._applied)
                if self._stop:
                    return
            time.sleep(RELOAD_DEBOUNCE_S)
            with self._cond:
                target = self._requested
            try:
                denied = self._load_denied() if self._load_denied else None
                self.accounts.write(self._load(), denied)
                self.accounts.reload_now()
            except Exception:  # the sync thread must outlive a bad write; it retries
                log.exception("broker account sync failed; retrying")
                time.sleep(1.0)
                continue
            with self._cond:
                self._applied = target
                self._cond.notify_all()
