"""The ingest reads every leaf a box writes, by the contract's own table: a new leaf in
simpul_wire.topics.LEAF_RULES fails here until the ingest handles or ignores it."""

from fleet_api.ingest.consumer import HANDLERS, IGNORED, LEAVES
from simpul_wire.topics import LEAF_RULES


def _box_leaves() -> set:
    return {leaf for leaf, rule in LEAF_RULES.items() if rule.writer == "box"}


def test_every_box_leaf_has_a_handler_or_is_ignored() -> None:
    assert set(HANDLERS) | set(IGNORED) == _box_leaves()
    assert not set(HANDLERS) & set(IGNORED)


def test_the_ingest_subscribes_to_every_handled_leaf() -> None:
    subscribed = {leaf.replace("cmd/+/result", "cmd/result") for leaf in LEAVES}
    assert subscribed == set(HANDLERS)
