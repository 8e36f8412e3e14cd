"""Broker accounts: the fleet database is the source of truth; the password file (in
Mosquitto's own hash format) and the access plugin's data file are rebuilt from it by
one writer under a lock, and the plugin is told to re-read them, debounced.

Never with SIGHUP: Mosquitto 2.0.11's reload re-checks every session's password and
disconnects a disconnected one a second time, which corrupts its session-expiry list
and crashes the broker (docs/security.md, "The broker's crash"). The plugin reads both
files itself and reloads on a message to its control topic. A revoked certificate is
refused by the CRL from the broker's next start, and until then the plugin denies its
identity everything and kicks its live connection.
"""

import base64
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

from fleet_api.broker.plugin import ACCESS_FILE, RELOAD_TOPIC
from simpul_wire.topics import fleet_name, valid_device_id

log = logging.getLogger("simpul.accounts")

# The fleet's own account and the bridges' carry '_', which no device id can: no
# registration can ever become one of them (docs/security.md, "Names").
FLEET_USER = fleet_name("fleet")
BRIDGE_PREFIX = fleet_name("bridge_")
# What brokers set up before these names held; a restart drops their lines.
LEGACY_USERS = ("simpul-fleet", "simpul-bridge")
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes for $7$
RELOAD_DEBOUNCE_S = 0.25


def bridge_user(name: str) -> str:
    return f"{BRIDGE_PREFIX}{name}"


def broker_user_ok(user: str) -> bool:
    """A device id or a bridge account: the only names the password file may hold beside
    the fleet's own."""
    if user.startswith(BRIDGE_PREFIX):
        return valid_bridge_name(user[len(BRIDGE_PREFIX):])
    return valid_device_id(user)


def valid_bridge_name(name: str) -> bool:
    """A bridge is named like a device (it is a district's name, e.g. kota-barat)."""
    return len(name) <= 40 and valid_device_id(name)


@dataclass
class AccessData:
    """What the broker must know, loaded from the fleet database by one query per table."""

    accounts: List[Tuple[str, str]] = field(default_factory=list)  # (user, hash)
    districts: List[Tuple[str, str]] = field(default_factory=list)  # (device id, district)
    bridges: List[Tuple[str, str]] = field(default_factory=list)  # (bridge user, district)
    denied: List[str] = field(default_factory=list)  # revoked certificate identities


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
    """The password-file line of the fleet's own account."""
    return [f"{FLEET_USER}:{(data / 'fleet.hash').read_text().strip()}"]


def passwd_text(service: List[str], accounts: List[Tuple[str, str]]) -> str:
    """The password file: the fleet's lines first, then one line per account. A user
    appears once whatever the caller passed: a name that is not a device's or a bridge's,
    or one already written, is dropped and logged (Mosquitto 2.0.11 keeps duplicate
    users in its hash table; docs/security.md, "The broker's crash")."""
    seen: Dict[str, str] = {}
    for line in service:
        user, _, pw_hash = line.partition(":")
        seen[user] = pw_hash
    for user, pw_hash in accounts:
        if user in seen or not broker_user_ok(user) or ":" in pw_hash or "\n" in pw_hash:
            log.error("broker account %r left out of the password file: a duplicate or "
                      "not a device or bridge name", user[:80])
            continue
        seen[user] = pw_hash
    return "".join(f"{user}:{pw_hash}\n" for user, pw_hash in seen.items())


def access_text(data: AccessData) -> str:
    """The plugin's data file (broker_config/plugin/simpul_acl.c): districts go
    percent-encoded, so a space in "Kota Barat" cannot split a line."""
    lines = ["# Written by the fleet's account sync; simpul_acl re-reads it when told."]
    lines += [f"D {d} {quote(district, safe='')}" for d, district in data.districts]
    lines += [f"B {user} {quote(district, safe='')}" for user, district in data.bridges]
    lines += [f"X {identity}" for identity in data.denied]
    return "\n".join(lines) + "\n"


class BrokerAccounts:
    """Rebuilds DIR/passwd from (username, hash) pairs and reloads the broker."""

    def __init__(self, data_dir: str) -> None:
        self.dir = Path(data_dir)
        self.reloads = 0

    def fleet_password(self) -> str:
        return (self.dir / "fleet.password").read_text().strip()

    def fleet_hash(self) -> str:
        return (self.dir / "fleet.hash").read_text().strip()

    def write(self, data: AccessData) -> None:
        """Write the password file (the fleet's account plus every device and bridge) and
        the plugin's data file (districts, bridges, revoked identities). A certificate
        login skips the password file: the plugin's deny of a revoked identity holds it
        until the CRL refuses the certificate at the broker's next start."""
        with open(self.dir / "passwd.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_private(self.dir / "passwd", passwd_text(service_lines(self.dir),
                                                           data.accounts))
            write_private(self.dir / ACCESS_FILE, access_text(data))

    def reload_now(self) -> bool:
        """The plugin re-reads the password and data files: a QoS 1 message on its control
        topic, whose PUBACK leaves the broker after the reload. False when the broker
        cannot be reached (it reads the files when it starts)."""
        try:
            url = json.loads((self.dir / "broker.json").read_text())["fleet_url"]
            host, port = url.split("//", 1)[1].rsplit(":", 1)
            password = self.fleet_password()
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cannot tell the broker to reload (%s); the accounts apply at its "
                        "next start", exc)
            return False
        if not _publish_reload(host, int(port), password):
            log.warning("the broker at %s did not confirm the reload; the accounts apply at "
                        "its next start", url)
            return False
        self.reloads += 1
        return True


def _publish_reload(host: str, port: int, password: str, timeout: float = 5.0) -> bool:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         client_id=fleet_name(f"accounts_{os.getpid()}"))
    client.username_pw_set(FLEET_USER, password)
    try:
        client.connect(host, port, keepalive=10)
    except OSError:
        return False
    client.loop_start()
    try:
        info = client.publish(RELOAD_TOPIC, b"", qos=1)
        info.wait_for_publish(timeout)
        return info.is_published()
    except (RuntimeError, ValueError):  # paho: not connected, or the queue is full
        return False
    finally:
        client.disconnect()
        client.loop_stop()


class AccountSync:
    """Debounced rebuild-and-reload. Many registrations within the debounce window cost
    one file write and one reload; `request()` returns a ticket `wait()` blocks on."""

    def __init__(self, accounts: BrokerAccounts, load: Callable[[], AccessData]) -> None:
        self.accounts = accounts
        self._load = load
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
                self.accounts.write(self._load())
                self.accounts.reload_now()
            except Exception:  # the sync thread must outlive a bad write; it retries
                log.exception("broker account sync failed; retrying")
                time.sleep(1.0)
                continue
            with self._cond:
                self._applied = target
                self._cond.notify_all()
