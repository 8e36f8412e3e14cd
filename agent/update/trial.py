"""The new version's trial, watched from inside the running agent.

After an update the agent restarts into the new slot. If this process runs from the
slot on trial, it checks itself every few seconds: connected to the broker and the
outbox database intact. Once it has been healthy for `commit_after_s` without a break,
it commits (the new slot becomes the committed one and the start counter is gone).
If it is not there by `trial_deadline_s`, it switches back to the previous slot and
asks for a restart (exit 75), so systemd starts the old version. A version that
crashes before either is caught by the start guard (agent.update.guard).
"""

import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

from agent.update import guard
from agent.update.slots import running_slot
from simpul_wire.config import UpdateSection

log = logging.getLogger("simpul.update")

CHECK_EVERY_S = 2.0


def outbox_intact(data_dir: str) -> Optional[str]:
    """None when the outbox passes SQLite's quick_check (or does not exist yet)."""
    path = Path(data_dir) / "outbox.sqlite"
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"outbox {path}: {exc}"
    if [r[0] for r in rows] != ["ok"]:
        return f"outbox {path}: " + "; ".join(str(r[0]) for r in rows[:3])
    return None


class TrialWatch:
    def __init__(self, settings: UpdateSection, data_dir: str, reactor: Any,
                 connected: Callable[[], bool], request_restart: Callable[[], None],
                 slot: Optional[str] = None) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.reactor = reactor
        self.connected = connected
        self.request_restart = request_restart
        self.slot = slot if slot is not None else running_slot(settings.root)
        self.started = reactor.monotonic()
        self.healthy_since: Optional[float] = None
        self.outcome: Optional[str] = None
        self._timer: Any = None

    def start(self) -> bool:
        """Watch when this process is the version on trial; False when there is none."""
        trial = guard.load_state(self.data_dir).get("trial")
        if not trial or self.slot is None or trial.get("slot") != self.slot:
            return False
        log.info("version %s is on trial in %s (start %s)", trial.get("version"), self.slot,
                 trial.get("starts"))
        self._timer = self.reactor.call_every(CHECK_EVERY_S, self.check, first=CHECK_EVERY_S)
        return True

    def check(self) -> None:
        now = self.reactor.monotonic()
        problem = None if self.connected() else "broker not connected"
        problem = problem or outbox_intact(self.data_dir)
        if problem is None:
            if self.healthy_since is None:
                self.healthy_since = now
            if now - self.healthy_since >= self.settings.commit_after_s:
                self._finish("committed", f"healthy for {self.settings.commit_after_s:.0f} s")
            return
        self.healthy_since = None
        if now - self.started >= self.settings.trial_deadline_s:
            self._finish("rolled_back", f"not healthy within {self.settings.trial_deadline_s:.0f}"
                         f" s: {problem}")
            self.request_restart()

    def _finish(self, result: str, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        state = guard.load_state(self.data_dir)
        if not state.get("trial") or state["trial"].get("slot") != self.slot:
            self.outcome = "gone"
            return
        guard.finish_trial(self.settings.root, self.data_dir, state, result, reason)
        self.outcome = result
        log.warning("update trial %s: %s", result, reason)


def watch(agent: Any, settings: UpdateSection, data_dir: str) -> TrialWatch:
    """Start the trial watch for an agent built by agent.daemon.build_agent."""

    def restart() -> None:
        agent.executor.restart_requested = True
        agent.box.reactor.call_later(1.0, agent.box.reactor.stop)

    watcher = TrialWatch(settings, data_dir, agent.box.reactor,
                         lambda: bool(agent.box.link.connected), restart)
    watcher.start()
    return watcher
