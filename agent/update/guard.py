"""The start guard: systemd runs it before every agent start (ExecStartPre).

Standard library only, and copied out of the slots to ROOT/guard.py at each install, so
it still runs when the slot it guards cannot even import. While an update is on trial it
counts starts in DATA/update-state.json; when a trial reaches more starts than allowed
without the new agent committing itself (a crash loop), it points ROOT/current back at
the previous slot. It never fails the start: exit status is always 0.

    ExecStartPre=/usr/bin/python3 /opt/simpul/guard.py --root /opt/simpul --data /var/lib/simpul

This file also holds the state-file and symlink helpers that agent.update.slots uses,
so the guard and the agent can never disagree about the format.
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

STATE = "update-state.json"
SLOTS = ("slot-a", "slot-b")
MAX_STARTS = 3


def load_state(data_dir: str) -> Dict[str, Any]:
    try:
        with open(os.path.join(data_dir, STATE), encoding="utf-8") as fh:
            state = json.load(fh)
    except FileNotFoundError:
        return {}
    except ValueError:
        # A torn file cannot happen (atomic replace), but a hand-edited one can:
        # an unreadable state means "no trial", so the committed slot keeps running.
        return {"corrupt": True}
    return state if isinstance(state, dict) else {}


def save_state(data_dir: str, state: Dict[str, Any]) -> None:
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, STATE)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(data_dir)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_slot(root: str) -> Optional[str]:
    try:
        target = os.readlink(os.path.join(root, "current"))
    except OSError:
        return None
    name = os.path.basename(target.rstrip("/"))
    return name if name in SLOTS else None


def switch(root: str, slot: str) -> None:
    """Point ROOT/current at slot atomically: a new symlink renamed over the old one."""
    if slot not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}")
    link = os.path.join(root, "current")
    tmp = os.path.join(root, f".current.{os.getpid()}")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(slot, tmp)  # relative, so the tree can be moved or mounted elsewhere
    os.replace(tmp, link)
    _fsync_dir(root)


def finish_trial(root: str, data_dir: str, state: Dict[str, Any], result: str,
                 reason: str) -> Dict[str, Any]:
    """End a trial: commit it, or switch back to the previous slot. Returns the new state."""
    trial = state.get("trial") or {}
    if result == "committed":
        state["committed"] = trial.get("slot")
        state["committed_version"] = trial.get("version")
    else:
        previous = trial.get("previous") or state.get("committed")
        if previous in SLOTS:
            switch(root, previous)
        state["rollbacks"] = int(state.get("rollbacks", 0)) + 1
    state["trial"] = None
    state["last"] = {"result": result, "version": trial.get("version"), "reason": reason,
                     "at": time.time()}
    save_state(data_dir, state)
    return state


def on_start(root: str, data_dir: str, max_starts: int = MAX_STARTS) -> str:
    """Count one start of a trial; roll back after too many. Returns what it did."""
    state = load_state(data_dir)
    trial = state.get("trial")
    if not trial:
        return "no update on trial"
    if current_slot(root) != trial.get("slot"):
        # Someone switched by hand: the trial is over, and what runs is not ours to judge.
        finish_trial(root, data_dir, state, "abandoned", "current no longer points at the "
                     "trial slot")
        return "trial abandoned"
    trial["starts"] = int(trial.get("starts", 0)) + 1
    if trial["starts"] > max_starts:
        finish_trial(root, data_dir, state, "rolled_back",
                     f"crash loop: {trial['starts'] - 1} starts without a healthy commit")
        return f"rolled back to {trial.get('previous')}"
    save_state(data_dir, state)
    return f"trial start {trial['starts']} of {max_starts}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="simpul-guard", description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="/opt/simpul")
    parser.add_argument("--data", default="/var/lib/simpul")
    parser.add_argument("--max-starts", type=int, default=MAX_STARTS)
    args = parser.parse_args(argv)
    try:
        print(f"simpul-guard: {on_start(args.root, args.data, args.max_starts)}")
    except OSError as exc:  # never block the start; say why
        print(f"simpul-guard: could not check the update trial: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
