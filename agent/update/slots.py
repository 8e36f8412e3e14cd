"""Install a verified bundle into the inactive slot, switch, check, commit or roll back.

    ROOT/slot-a/     a virtualenv holding one agent version
    ROOT/slot-b/     the other one
    ROOT/current  -> slot-a   (systemd runs ROOT/current/bin/simpul-agent)
    ROOT/guard.py    the start guard (agent.update.guard), outside both slots
    DATA/update-state.json   committed slot, the trial in progress, the last outcome

`apply_bundle` is what the `update` command and `simpul-agent update apply` run:
signature first (nothing is written before it passes), then the wheels out of the tar
by their signed hashes, a fresh virtualenv in the slot that is not running, the switch,
and the health check run by the *new* version. A failed check switches back at once.
A passed one leaves the slot on trial: the agent restarts into it, and the new agent
commits itself after `commit_after_s` healthy (agent.update.trial), while the start
guard rolls back a version that keeps crashing.
"""

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

from agent import __version__
from agent.errors import AgentError, SignatureError, UpdateError
from agent.update import guard
from simpul_wire import errors as wire
from simpul_wire.bundle import Manifest, decode_public_key, extract_wheels, open_verified
from simpul_wire.config import AgentConfig, UpdateSection

log = logging.getLogger("simpul.update")

HEALTH_TIMEOUT_S = 180.0
INSTALL_TIMEOUT_S = 900.0


F = TypeVar("F", bound=Callable[..., Any])


def _as_agent_error(step: F) -> F:
    """The contract's bundle checks (simpul_wire.bundle) raise simpul_wire's UpdateError;
    what leaves the agent's update steps is the agent's own (an AgentError too)."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return step(*args, **kwargs)
        except wire.UpdateError as exc:
            if isinstance(exc, AgentError):
                raise
            kind = SignatureError if isinstance(exc, wire.SignatureError) else UpdateError
            raise kind(str(exc)) from exc

    return run  # type: ignore[return-value]


def version_key(version: str) -> Tuple[int, ...]:
    """Numeric release parts only ("1.0.0rc1" → (1, 0, 0)); enough to refuse replays."""
    parts = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        parts.append(int(match.group()) if match else 0)
    return tuple(parts)


def inactive_slot(root: str) -> str:
    running = guard.current_slot(root)
    return guard.SLOTS[1] if running == guard.SLOTS[0] else guard.SLOTS[0]


def fetch(source: str, dest: Path, max_bytes: int) -> Path:
    """A bundle from an http(s) URL (downloaded to dest) or a local path (used in place)."""
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise UpdateError(f"bundle {source}: no such file")
        return path
    dest.parent.mkdir(parents=True, exist_ok=True)
    got = 0
    try:
        with urllib.request.urlopen(source, timeout=60) as resp, open(dest, "wb") as fh:
            for chunk in iter(lambda: resp.read(1 << 16), b""):
                got += len(chunk)
                if got > max_bytes:
                    raise UpdateError(f"bundle {source}: larger than {max_bytes} bytes")
                fh.write(chunk)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise UpdateError(f"bundle {source}: download failed: {exc}") from exc
    return dest


def _run(args: List[str], timeout: float, what: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
        raise UpdateError(f"{what} exited {done.returncode}: {' | '.join(tail)}")
    return done.stdout


def install_slot(settings: UpdateSection, slot: str, manifest: Manifest,
                 wheel_dir: Path) -> Path:
    """A fresh virtualenv in ROOT/slot holding the bundle's wheels and nothing else."""
    target = Path(settings.root) / slot
    if guard.current_slot(settings.root) == slot:
        raise UpdateError(f"{slot} is the running slot; refusing to install over it")
    shutil.rmtree(target, ignore_errors=True)
    _run([settings.python, "-m", "venv", str(target)], INSTALL_TIMEOUT_S, "making the venv")
    _run([str(target / "bin" / "python"), "-m", "pip", "install", "--no-index",
          "--no-cache-dir", "--disable-pip-version-check", "--find-links", str(wheel_dir),
          manifest.requirement], INSTALL_TIMEOUT_S, "pip install")
    out = _run([str(target / "bin" / "simpul-agent"), "--version"], 60, "the new agent")
    if manifest.version not in out.split():
        raise UpdateError(f"{slot} reports {out.strip()!r}, the bundle is {manifest.version}")
    return target


def _copy_guard(root: str) -> None:
    # The guard travels with each version but runs from outside the slots.
    src = Path(guard.__file__)
    tmp = Path(root) / ".guard.py.tmp"
    shutil.copyfile(src, tmp)
    tmp.replace(Path(root) / "guard.py")


@_as_agent_error
def bootstrap(settings: UpdateSection, data_dir: str, bundle: Path) -> Dict[str, Any]:
    """First install on a fresh box (provisioning): slot-a, committed, no trial."""
    manifest = open_verified(bundle, [decode_public_key(k) for k in settings.public_keys])
    Path(settings.root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.root, prefix=".wheels-") as tmp:
        extract_wheels(bundle, manifest, Path(tmp))
        install_slot(settings, guard.SLOTS[0], manifest, Path(tmp))
    guard.switch(settings.root, guard.SLOTS[0])
    _copy_guard(settings.root)
    state = {"committed": guard.SLOTS[0], "committed_version": manifest.version,
             "trial": None, "rollbacks": 0}
    guard.save_state(data_dir, state)
    return state


def health_check(slot_dir: Path, config_path: str) -> str:
    """Run the new version's own `simpul-agent update health`; UpdateError if it fails."""
    return _run([str(slot_dir / "bin" / "simpul-agent"), "update", "health", "--config",
                 config_path], HEALTH_TIMEOUT_S, "health check")


@_as_agent_error
def apply_bundle(config: AgentConfig, config_path: str, source: str,
                 allow_downgrade: bool = False) -> Dict[str, Any]:
    """Verify, install, switch and check one bundle. Returns the command's result; the
    caller restarts the agent so the new version runs its trial."""
    settings = config.update
    data_dir = config.device.data_dir
    trusted = [decode_public_key(k) for k in settings.public_keys]
    work = Path(data_dir) / "update"
    bundle = fetch(source, work / "incoming.tar", settings.max_bundle_bytes)
    manifest = open_verified(bundle, trusted)  # before anything else is touched
    if not allow_downgrade and version_key(manifest.version) <= version_key(__version__):
        raise UpdateError(f"bundle {manifest.version} is not newer than the running "
                          f"{__version__} (args.allow_downgrade to force)")
    state = guard.load_state(data_dir)
    if state.get("trial"):
        raise UpdateError(f"version {state['trial'].get('version')} is still on trial")
    running = guard.current_slot(settings.root)
    if running is None:
        raise UpdateError(f"{settings.root}/current is not a slot link; install the first "
                          "version with `simpul-agent update bootstrap`")
    slot = inactive_slot(settings.root)
    log.info("installing %s into %s (running %s from %s)", manifest.version, slot,
             __version__, running)
    with tempfile.TemporaryDirectory(dir=settings.root, prefix=".wheels-") as tmp:
        extract_wheels(bundle, manifest, Path(tmp))
        target = install_slot(settings, slot, manifest, Path(tmp))
    _copy_guard(settings.root)
    state.update(trial={"slot": slot, "previous": running, "version": manifest.version,
                        "from_version": __version__, "starts": 0})
    guard.save_state(data_dir, state)
    guard.switch(settings.root, slot)
    try:
        health_check(target, config_path)
    except UpdateError as exc:
        guard.finish_trial(settings.root, data_dir, state, "rolled_back",
                           f"health check failed: {exc}")
        raise UpdateError(f"{manifest.version} failed its health check and was rolled "
                          f"back to {running}: {exc}") from exc
    if bundle.parent == work:
        bundle.unlink()
    return {"version": manifest.version, "slot": slot, "previous": running,
            "state": "on_trial", "restart_agent": True}


def running_slot(root: str) -> Optional[str]:
    """The slot this very process runs from, or None outside the slot layout."""
    prefix = os.path.realpath(sys.prefix)
    for slot in guard.SLOTS:
        if prefix == os.path.realpath(os.path.join(root, slot)):
            return slot
    return None
