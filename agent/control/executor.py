"""Commands from the fleet: acknowledged on receipt, run once, result reported.

Each command has an id and an expiry. The ledger (agent.control.ledger) makes a command
delivered twice run once; results the broker has not acknowledged are sent again after
a reconnect.
"""

import logging
import threading
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from agent.box import Box
from agent.control.builtin import Builtin, CommandError
from agent.control.ledger import Ledger
from simpul_wire.models import Command, CommandResult, WireError, decode, encode
from simpul_wire.topics import TopicError, parse_topic, topic

log = logging.getLogger("simpul.commands")


class Executor:
    def __init__(self, box: Box, ledger: Ledger, builtins: Dict[str, Builtin]) -> None:
        self.box = box
        self.ledger = ledger
        self.builtins = builtins
        self.restart_requested = False
        box.router.route("cmd", self._on_message)
        box.router.when_online(self.resend_results)

    def _on_message(self, name: str, payload: bytes) -> None:
        try:
            device_id, leaf, _ = parse_topic(name)
        except TopicError:
            return
        if leaf != "cmd" or device_id != self.box.device_id:
            return
        try:
            command = decode(Command, payload)
        except WireError as exc:
            log.error("ignoring a malformed command on %s: %s", name, exc)
            return
        self.handle(command)

    def handle(self, command: Command) -> None:
        seen = self.ledger.seen(command.command_id)
        if seen is not None:
            status, result, error = seen
            log.info("command %s delivered again; not run twice", command.command_id)
            if status != "received":
                self._publish(command.command_id, status, result, error)
            return
        self.ledger.receive(command.command_id, command.name)
        if command.expires_at < datetime.now(timezone.utc):
            return self._finish(command.command_id, "expired", {}, "arrived after its expiry")
        builtin = self.builtins.get(command.name)
        if builtin is None:
            known = ", ".join(sorted(self.builtins))
            return self._finish(command.command_id, "rejected", {},
                                f"unknown command {command.name!r}; this box knows {known}")
        self._publish(command.command_id, "received", {}, None)
        if builtin.blocking:
            threading.Thread(target=self._run, args=(command, builtin, True),
                             name=f"cmd-{command.command_id}", daemon=True).start()
        else:
            self._run(command, builtin, False)

    def _run(self, command: Command, builtin: Builtin, threaded: bool) -> None:
        status, result, error = "succeeded", {}, None  # type: str, Dict[str, Any], Optional[str]
        try:
            result = builtin.handler(dict(command.args))
        except CommandError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # a handler bug fails the command, never the agent
            log.exception("command %s crashed", command.command_id)
            status, error = "failed", f"internal error: {exc!r}"

        def done() -> None:
            self._finish(command.command_id, status, result, error)
            # `update` asks for the restart into its new slot through its result.
            if status == "succeeded" and (command.name == "restart_agent"
                                          or result.get("restart_agent") is True):
                self.restart_requested = True
                self.box.reactor.call_later(1.0, self.box.reactor.stop)

        if threaded:
            self.box.reactor.call_soon_threadsafe(done)
        else:
            done()

    def _finish(self, command_id: str, status: str, result: Dict[str, Any],
                error: Optional[str]) -> None:
        self.ledger.finish(command_id, status, result, error)
        self._publish(command_id, status, result, error)

    def _publish(self, command_id: str, status: str, result: Dict[str, Any],
                 error: Optional[str]) -> None:
        payload = CommandResult(device_id=self.box.device_id, command_id=command_id,
                                status=status, result=result, error=error)  # type: ignore[arg-type]

        def acked(ok: bool) -> None:
            if ok:
                self.ledger.reported(command_id, status)

        self.box.link.publish(topic(self.box.device_id, "cmd/result", command_id),
                              encode(payload), on_ack=acked)

    def resend_results(self) -> None:
        for command_id, status, result, error in self.ledger.unreported():
            self._publish(command_id, status, result, error)
