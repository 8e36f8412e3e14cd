"""The box's router: one handler per leaf and per ack stream, listeners in order."""

from typing import List, Tuple

import pytest

from agent.routing import Router, RouteTaken
from simpul_wire.models import Ack, encode
from simpul_wire.topics import topic

pytestmark = pytest.mark.py39


def test_each_leaf_goes_to_its_one_handler() -> None:
    router = Router("park-01")
    got: List[Tuple[str, str]] = []
    router.route("config/desired", lambda name, payload: got.append(("twin", name)))
    router.route("cmd", lambda name, payload: got.append(("cmd", name)))
    router.dispatch(topic("park-01", "config/desired"), b"{}")
    router.dispatch(topic("park-01", "cmd", "c1"), b"{}")
    router.dispatch(topic("park-02", "cmd", "c2"), b"{}")  # another box's: not ours
    router.dispatch("elsewhere/x", b"{}")  # a foreign topic: ignored
    assert got == [("twin", topic("park-01", "config/desired")),
                   ("cmd", topic("park-01", "cmd", "c1"))]
    with pytest.raises(RouteTaken):
        router.route("cmd", lambda name, payload: None)


def test_acks_go_by_stream_and_the_rest_to_the_default() -> None:
    router = Router("park-01")
    claims: List[Ack] = []
    others: List[Ack] = []
    router.route_ack("claim", claims.append)
    router.route_ack(None, others.append)
    for stream in ("claim", "telemetry", "health"):
        ack = Ack(device_id="park-01", stream=stream, epoch="0123456789abcdef", ranges=[(0, 1)])
        router.dispatch(topic("park-01", "ack"), encode(ack))
    router.dispatch(topic("park-01", "ack"), b"not json")  # malformed: logged, dropped
    assert [a.stream for a in claims] == ["claim"]
    assert [a.stream for a in others] == ["telemetry", "health"]
    with pytest.raises(RouteTaken):
        router.route_ack("claim", claims.append)
    with pytest.raises(RouteTaken):
        router.route("ack", lambda name, payload: None)


def test_online_listeners_run_in_the_order_they_were_added() -> None:
    router = Router("park-01")
    order: List[str] = []
    for name in ("sender", "twin", "executor"):
        router.when_online(lambda name=name: order.append(name))  # type: ignore[misc]
    router.online()
    assert order == ["sender", "twin", "executor"]
