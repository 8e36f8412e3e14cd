"""One select loop for timers and any number of paho MQTT clients.

The agent runs one box on it; the fleet simulator runs thousands of virtual boxes on
one, in one thread, with the same link code. paho is driven through its socket
callbacks (loop_read / loop_write / loop_misc), so no thread per client exists.
"""

import heapq
import itertools
import logging
import selectors
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import paho.mqtt.client as mqtt

MISC_INTERVAL_S = 1.0
log = logging.getLogger("simpul.reactor")


class Timer:
    __slots__ = ("cancelled", "fn", "when")

    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: List[Tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._clients: Dict[int, mqtt.Client] = {}
        self._stopping = False
        self.monotonic = monotonic
        self.errors = 0

    # -- timers ---------------------------------------------------------------------
    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = Timer(self.monotonic() + max(0.0, delay), fn)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def call_every(self, interval: float, fn: Callable[[], None],
                   first: Optional[float] = None) -> Timer:
        """Run fn every interval seconds; a slow run skips ticks instead of piling up."""
        handle = Timer(0.0, fn)

        def tick() -> None:
            if handle.cancelled:
                return
            started = self.monotonic()
            fn()
            behind = self.monotonic() - started
            nxt = self.call_later(max(0.0, interval - behind % interval), tick)
            handle.when = nxt.when

        self.call_later(interval if first is None else first, tick)
        return handle

    # -- MQTT clients ---------------------------------------------------------------------
    def attach(self, client: mqtt.Client) -> None:
        client.on_socket_open = self._on_open
        client.on_socket_close = self._on_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._clients[id(client)] = client

    def detach(self, client: mqtt.Client) -> None:
        self._clients.pop(id(client), None)

    def _on_open(self, client: mqtt.Client, _ud: Any, sock: socket.socket) -> None:
        try:
            self._sel.register(sock, selectors.EVENT_READ, client)
        except (KeyError, ValueError):
            self._sel.modify(sock, selectors.EVENT_READ, client)

    def _on_close(self, client: mqtt.Client, _ud: Any, sock: socket.socket) -> None:
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_register_write(self, client: mqtt.Client, _ud: Any, sock: socket.socket) -> None:
        try:
            self._sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        except (KeyError, ValueError):
            pass

    def _on_unregister_write(self, client: mqtt.Client, _ud: Any, sock: socket.socket) -> None:
        try:
            self._sel.modify(sock, selectors.EVENT_READ, client)
        except (KeyError, ValueError):
            pass

    def _misc(self) -> None:
        for client in list(self._clients.values()):
            client.loop_misc()

    # -- running ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True

    def run(self, until: Optional[Callable[[], bool]] = None, timeout: Optional[float] = None
            ) -> None:
        """Run until stop(), until() is true, or timeout seconds have passed."""
        self._stopping = False
        deadline = None if timeout is None else self.monotonic() + timeout
        misc = self.call_every(MISC_INTERVAL_S, self._misc)
        try:
            while not self._stopping:
                if until is not None and until():
                    return
                now = self.monotonic()
                if deadline is not None and now >= deadline:
                    return
                wait = 0.5
                if self._timers:
                    wait = min(wait, max(0.0, self._timers[0][0] - now))
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - now))
                self._poll(wait)
                self._run_due()
        finally:
            misc.cancel()

    def _poll(self, wait: float) -> None:
        if not self._sel.get_map():
            time.sleep(wait)
            return
        for key, mask in self._sel.select(wait):
            client: mqtt.Client = key.data
            try:
                if mask & selectors.EVENT_READ:
                    client.loop_read()
                if mask & selectors.EVENT_WRITE:
                    client.loop_write()
            except Exception:  # one client's callback bug must not stop the others
                self.errors += 1
                log.exception("MQTT client callback failed")

    def _run_due(self) -> None:
        now = self.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            try:
                timer.fn()
            except Exception:  # the loop outlives any one callback; counted
                self.errors += 1
                log.exception("timer callback failed")
