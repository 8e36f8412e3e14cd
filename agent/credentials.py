"""Broker password rotation on the box, with no window in which it is locked out.

The box holds its password in the file [broker] password_file names. A rotation
(`rotate_credentials` command, args {"password", "rotation_id", "reconnect_after_s"})
writes the new password beside it, as FILE.pending (0600, written to a temp file,
fsynced, renamed), and leaves the old one in place. From then on every connection
attempt alternates: the pending password first, the old one after a refusal. The first
connection that succeeds with the pending password promotes it (renamed over FILE);
the old password is gone from the box only then.

So whichever single hash the broker holds (Mosquitto's password file keeps one per
user; the fleet switches it after the box says "staged"), the box has its password,
and a fleet that reverts the switch finds the box still holding the old one.

The Link asks `password()` before each connection attempt and tells `auth_result(ok)`
after each CONNACK; that is the only coupling (agent.link: `password_source` and
`on_auth`). Passwords never appear in logs or command results.
"""

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from agent.control.builtin import CommandError

log = logging.getLogger("simpul.credentials")

_ROTATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
REVERIFY_S = (30.0, 120.0, 600.0, 3600.0)  # pending not accepted yet: try again later


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


class Credentials:
    def __init__(self, password_file: str) -> None:
        self.path = Path(password_file)
        self.pending_path = self.path.with_name(self.path.name + ".pending")
        self._tried_pending = False
        self._lock = threading.Lock()
        self.promoted = 0
        self.refusals_with_pending = 0

    @property
    def pending(self) -> bool:
        return self.pending_path.exists()

    def password(self) -> Optional[str]:
        """The password for the next connection attempt."""
        with self._lock:
            pending = _read(self.pending_path)
            if pending is not None and not self._tried_pending:
                self._tried_pending = True
                return pending
            self._tried_pending = False  # the next attempt tries the pending one again
            return _read(self.path)

    def auth_result(self, ok: bool) -> None:
        """After each CONNACK: a success with the pending password promotes it."""
        with self._lock:
            used_pending = self._tried_pending
            if not ok:
                if used_pending:
                    self.refusals_with_pending += 1
                return
            self._tried_pending = False
            if used_pending and self.pending_path.exists():
                os.replace(self.pending_path, self.path)
                self.promoted += 1
                log.warning("broker accepted the new password; the old one is gone")

    def stage(self, password: str) -> None:
        _write_atomic(self.pending_path, password + "\n")
        with self._lock:
            self._tried_pending = False


Handler = Callable[[Dict[str, Any]], Dict[str, Any]]


def rotate_handler(credentials: Optional[Credentials],
                   reconnect: Callable[[float], None], boot_id: str = "") -> Handler:
    """The `rotate_credentials` command: stage the new password, then reconnect with it
    after `reconnect_after_s` (time for the fleet to switch the broker's hash).
    `only_boot_id` confines it to one agent process: of two boxes sharing a cloned
    identity, the one the operator keeps gets the new password, the other one not."""

    def run(args: Dict[str, Any]) -> Dict[str, Any]:
        only = args.get("only_boot_id")
        if only is not None and only != boot_id:
            raise CommandError(f"meant for boot {only}; this box is boot {boot_id}")
        if credentials is None:
            raise CommandError("this box logs in without a password file; nothing to rotate")
        password = args.get("password")
        rotation_id = str(args.get("rotation_id", ""))
        if not isinstance(password, str) or not 16 <= len(password) <= 256 \
                or any(c.isspace() for c in password):
            raise CommandError("args.password must be 16-256 characters without spaces")
        if not _ROTATION_ID.match(rotation_id):
            raise CommandError("args.rotation_id must be 1-64 of A-Z a-z 0-9 _ . : -")
        delay = float(args.get("reconnect_after_s", 10.0))
        if not 0 <= delay <= 3600:
            raise CommandError("args.reconnect_after_s must be 0-3600")
        try:
            credentials.stage(password)
        except OSError as exc:
            raise CommandError(f"cannot write {credentials.pending_path}: {exc.strerror}") \
                from exc
        reconnect(delay)
        return {"staged": rotation_id, "reconnect_after_s": delay}

    return run


def attach(agent: Any, password_file: Optional[str]) -> Optional[Credentials]:
    """Wire rotation into an agent built by agent.daemon.build_agent."""
    if password_file is None:
        return None
    credentials = Credentials(password_file)
    link = agent.box.link
    link.password_source = credentials.password
    link.on_auth = credentials.auth_result
    reactor = agent.box.reactor
    tries = [0]

    def reconnect_now() -> None:
        if link.connected:
            link.client.disconnect()  # the link's own retry connects again at once

    def reconnect(delay: float) -> None:
        tries[0] = 0
        reactor.call_later(delay, reconnect_now)

    def after_online() -> None:
        # Connected with the old password while a new one waits: the fleet has not
        # switched yet. Try the new one again later, backing off.
        if credentials.pending:
            delay = REVERIFY_S[min(tries[0], len(REVERIFY_S) - 1)]
            tries[0] += 1
            reactor.call_later(delay, reconnect_now)

    agent.box.router.when_online(after_online)
    from agent.control.builtin import Builtin

    agent.executor.builtins["rotate_credentials"] = Builtin(
        rotate_handler(credentials, lambda d: reactor.call_later(0, lambda: reconnect(d)),
                       boot_id=link.settings.boot_id or ""),
        False)
    return credentials
