"""Where the box's incoming messages go: one handler per topic leaf, one per ack stream.

The link hands every message to `Router.dispatch`. A leaf (`config/desired`, `cmd`) has
exactly one handler, set once where the agent is built (agent/daemon.py); the `ack` leaf
is decoded here and goes on by its stream: the claim's to the claimer, every other
stream's to the sender, which confirms outbox records. Listeners of the link coming up
run in the order they were added (the sender first, so the backlog is due before the
twin reports and the executor resends results).
"""

import logging
from typing import Callable, Dict, List, Optional

from agent.errors import AgentError
from simpul_wire.models import Ack, WireError, decode
from simpul_wire.topics import TopicError, parse_topic

log = logging.getLogger("simpul.routing")

MessageHandler = Callable[[str, bytes], None]
AckHandler = Callable[[Ack], None]
OnlineListener = Callable[[], None]

ACK_LEAF = "ack"


class RouteTaken(AgentError, ValueError):
    """A leaf or ack stream given a second handler: a wiring mistake, found at start."""


class Router:
    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self._leaves: Dict[str, MessageHandler] = {}
        self._acks: Dict[str, AckHandler] = {}
        self._other_acks: Optional[AckHandler] = None
        self._online: List[OnlineListener] = []

    # -- wiring -----------------------------------------------------------------------
    def route(self, leaf: str, handler: MessageHandler) -> None:
        """Messages on this leaf (a contract leaf; `cmd` for any command id) go to handler."""
        if leaf == ACK_LEAF:
            raise RouteTaken("acks are routed by stream: use route_ack")
        if leaf in self._leaves:
            raise RouteTaken(f"leaf {leaf!r} already has a handler")
        self._leaves[leaf] = handler

    def route_ack(self, stream: Optional[str], handler: AckHandler) -> None:
        """Acks of this stream go to handler; stream None: every stream not named."""
        if stream is None:
            if self._other_acks is not None:
                raise RouteTaken("acks of the other streams already have a handler")
            self._other_acks = handler
            return
        if stream in self._acks:
            raise RouteTaken(f"acks of stream {stream!r} already have a handler")
        self._acks[stream] = handler

    def when_online(self, listener: OnlineListener) -> None:
        self._online.append(listener)

    # -- running ----------------------------------------------------------------------
    def dispatch(self, name: str, payload: bytes) -> None:
        try:
            device_id, leaf, _ = parse_topic(name)
        except TopicError:
            log.debug("ignoring a message on foreign topic %s", name)
            return
        if device_id != self.device_id:
            return  # the broker's ACL sends none; nothing of ours if it did
        if leaf == ACK_LEAF:
            self._dispatch_ack(payload)
            return
        handler = self._leaves.get(leaf)
        if handler is not None:
            handler(name, payload)

    def _dispatch_ack(self, payload: bytes) -> None:
        try:
            ack = decode(Ack, payload)
        except WireError as exc:
            log.warning("ignoring a malformed ack: %s", exc)
            return
        handler = self._acks.get(ack.stream, self._other_acks)
        if handler is not None:
            handler(ack)

    def online(self) -> None:
        for listener in self._online:
            listener()
