"""One select loop for timers and any number of paho MQTT clients.

The agent runs one box on it; the fleet simulator runs thousands of virtual boxes on
one, in one thread, with the same link code. paho is driven through its socket
callbacks (loop_read / loop_write / loop_misc), so no thread per client exists.
"""

import collections
import heapq
import itertools
import logging
import os
import selectors
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import paho.mqtt.client as mqtt

from simpul_wire.transport import no_delay

MISC_INTERVAL_S = 1.0
TIMER_BUDGET_S = 0.05
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
        # Worker threads hand results back through a queue and a wake-up pipe.
        self._soon: Deque[Callable[[], None]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
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

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run fn on the loop's thread; callable from any thread."""
        self._soon.append(fn)
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the loop is waking up anyway

    # -- MQTT clients ---------------------------------------------------------------------
    def attach(self, client: mqtt.Client) -> None:
        client.on_socket_open = self._on_open
        client.on_socket_close = self._on_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self._clients[id(client)] = client

    def detach(self, client: mqtt.Client) -> None:
        self._clients.pop(id(client), None)

    def _on_open(self, client: mqtt.Client, _ud: Any, sock: Any) -> None:
        no_delay(sock)
        try:
            self._sel.register(sock, selectors.EVENT_READ, client)
        except (KeyError, ValueError):
            self._sel.modify(sock, selectors.EVENT_READ, client)

    def _on_close(self, client: mqtt.Client, _ud: Any, sock: Any) -> None:
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _on_register_write(self, client: mqtt.Client, _ud: Any, sock: Any) -> None:
        try:
            self._sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)
        except (KeyError, ValueError):
            pass

    def _on_unregister_write(self, client: mqtt.Client, _ud: Any, sock: Any) -> None:
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
        for key, mask in self._sel.select(wait):
            if key.data is None:
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                continue
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
        while self._soon:
            self._safely(self._soon.popleft())
        now = self.monotonic()
        # A burst of due timers (thousands of boxes starting) must not starve the
        # sockets: past the budget, the rest run after the next poll, which won't wait.
        budget = now + TIMER_BUDGET_S
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._safely(timer.fn)
            if self.monotonic() > budget:
                break

    def _safely(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # the loop outlives any one callback; counted
            self.errors += 1
            log.exception("callback failed")
