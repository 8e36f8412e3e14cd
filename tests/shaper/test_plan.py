"""The planner: pure tables of tier + state -> tc commands."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.shaper.errors import ShaperError
from agent.shaper.plan import (
    DEFAULT_MINOR,
    ROOT_MINOR,
    ClassSpec,
    DeviceState,
    Tier,
    class_tree,
    ifb_name,
    kbit,
    plan,
)

pytestmark = pytest.mark.py39


def _lines(p):
    return p.render()


def test_fresh_plan_without_clients_builds_both_trees_and_the_redirect():
    p = plan("wlan0", Tier(100, 20))
    assert _lines(p) == [
        "ip link add name ifb-wlan0 type ifb",
        "ip link set dev ifb-wlan0 txqueuelen 1000 up",
        "tc qdisc replace dev wlan0 root handle 1: htb default fffe",
        "tc class add dev wlan0 parent 1: classid 1:1 htb rate 100000kbit ceil 100000kbit quantum 15140",  # noqa: E501
        "tc class add dev wlan0 parent 1:1 classid 1:fffe htb rate 100000kbit ceil 100000kbit quantum 15140",  # noqa: E501
        "tc qdisc replace dev ifb-wlan0 root handle 1: htb default fffe",
        "tc class add dev ifb-wlan0 parent 1: classid 1:1 htb rate 20000kbit ceil 20000kbit quantum 15140",  # noqa: E501
        "tc class add dev ifb-wlan0 parent 1:1 classid 1:fffe htb rate 20000kbit ceil 20000kbit quantum 15140",  # noqa: E501
        "tc qdisc add dev wlan0 handle ffff: ingress",
        "tc filter add dev wlan0 parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ifb-wlan0",  # noqa: E501
    ]  # fmt: skip


def test_per_client_plan_uses_hash_table_dst_on_interface_src_on_ifb():
    p = plan("wlan0", Tier(100, 100, 10), ["10.42.0.23", "10.42.0.17", "10.42.0.17"])
    assert p.clients == {"10.42.0.17": 0x10, "10.42.0.23": 0x11}
    lines = _lines(p)
    assert "tc filter add dev wlan0 parent 1: protocol ip prio 5 handle 2: u32 divisor 256" in lines
    assert ("tc filter add dev wlan0 parent 1: protocol ip prio 5 u32 ht 800:: match ip dst "
            "0.0.0.0/0 hashkey mask 0x000000ff at 16 link 2:") in lines  # fmt: skip
    assert ("tc filter add dev wlan0 parent 1: protocol ip prio 5 handle 2:11:10 u32 ht 2:11: "
            "match ip dst 10.42.0.17/32 flowid 1:10") in lines  # fmt: skip
    assert ("tc filter add dev ifb-wlan0 parent 1: protocol ip prio 5 handle 2:17:11 u32 "
            "ht 2:17: match ip src 10.42.0.23/32 flowid 1:11") in lines  # fmt: skip
    # Client classes: guaranteed an equal share, capped at the per-client ceiling.
    assert p.down[0x10] == ClassSpec(0x10, ROOT_MINOR, 10000, 10000)
    assert p.down[DEFAULT_MINOR] == ClassSpec(DEFAULT_MINOR, ROOT_MINOR, 33333, 100000)


def test_per_client_cap_above_tier_is_clamped_to_the_tier():
    tree = class_tree(100, 500, {"10.0.0.2": 0x10})
    assert tree[0x10].ceil_kbit == 100000
    assert tree[0x10].rate_kbit == 50000


def _shaped(p, dev_tree, clients, ingress=True, mirred="ifb-wlan0"):
    return DeviceState(exists=True, ours=True, root_htb1=True, classes=dict(dev_tree),
                       clients=dict(clients), hash_table=bool(clients), hash_link=bool(clients),
                       ingress=ingress,
                       mirred_to=mirred)  # fmt: skip


def test_tier_change_on_shaped_interface_is_class_change_only():
    old = plan("wlan0", Tier(100, 100))
    down = _shaped(old, old.down, {})
    up = _shaped(old, old.up, {}, ingress=False, mirred=None)
    new = plan("wlan0", Tier(300, 300), (), down, up)
    verbs = [c[:3] for c in new.commands]
    assert ("ip", "link", "add") not in verbs
    assert all(c[0] == "ip" or c[1:3] == ("class", "change") for c in new.commands), verbs
    assert sum(1 for c in new.commands if c[1:3] == ("class", "change")) == 4


def test_replan_of_the_same_tier_changes_nothing_in_tc():
    first = plan("wlan0", Tier(100, 50, 10), ["10.42.0.17"])
    down = _shaped(first, first.down, first.clients)
    up = _shaped(first, first.up, first.clients, ingress=False, mirred=None)
    again = plan("wlan0", Tier(100, 50, 10), ["10.42.0.17"], down, up)
    assert [c for c in again.commands if c[0] == "tc"] == []


def test_clients_keep_their_minor_and_departed_ones_are_removed_filter_first():
    first = plan("wlan0", Tier(100, 100, 10), ["10.42.0.17", "10.42.0.23"])
    down = _shaped(first, first.down, first.clients)
    up = _shaped(first, first.up, first.clients, ingress=False, mirred=None)
    new = plan("wlan0", Tier(100, 100, 10), ["10.42.0.23", "10.42.0.99"], down, up)
    assert new.clients == {"10.42.0.23": 0x11, "10.42.0.99": 0x10}
    lines = [line for line in new.render() if "dev wlan0 " in line]
    delete_filter = "tc filter del dev wlan0 parent 1: protocol ip prio 5 handle 2:11:10 u32"
    assert delete_filter in lines
    # The freed minor 1:10 is reused by the newcomer: its filter goes, then a new one.
    assert lines.index(delete_filter) < lines.index(
        "tc filter add dev wlan0 parent 1: protocol ip prio 5 handle 2:63:10 u32 ht 2:63: "
        "match ip dst 10.42.0.99/32 flowid 1:10"
    )


def test_foreign_htb_root_is_deleted_before_ours_goes_in():
    foreign = DeviceState(exists=True, ours=False, root_htb1=True)
    cmds = plan("eth1", Tier(10, 10), (), foreign).render()
    assert cmds[2:4] == ["tc qdisc del dev eth1 root",
                         "tc qdisc replace dev eth1 root handle 1: htb default fffe"]  # fmt: skip


def test_redirect_to_another_device_is_replaced():
    old = plan("wlan0", Tier(10, 10))
    down = _shaped(old, old.down, {}, mirred="ifb0")
    up = _shaped(old, old.up, {}, ingress=False, mirred=None)
    lines = plan("wlan0", Tier(10, 10), (), down, up).render()
    assert lines[-2:] == [
        "tc filter del dev wlan0 parent ffff: protocol all prio 1",
        "tc filter add dev wlan0 parent ffff: protocol all prio 1 u32 match u32 0 0 action "
        "mirred egress redirect dev ifb-wlan0",
    ]


def test_netns_rendering_puts_the_namespace_after_the_tool():
    assert plan("hs0", Tier(1, 1)).render("box1")[0] == "ip -n box1 link add name ifb-hs0 type ifb"


@pytest.mark.parametrize(
    ("interface", "expected"),
    [("wlan0", "ifb-wlan0"), ("br-hotspot", "ifb-br-hotspot"), ("wlx00c0ca123456", None)],
)
def test_ifb_names_fit_in_fifteen_characters(interface, expected):
    name = ifb_name(interface)
    assert len(name) <= 15
    if expected:
        assert name == expected
    else:
        assert name.startswith("ifb-wlx00-") and name != ifb_name("wlx00c0ca123457")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"down_mbps": 0, "up_mbps": 1}, "down_mbps must be above 0"),
        ({"down_mbps": 1, "up_mbps": 20000}, "up_mbps must be above 0 and at most 10000"),
        ({"down_mbps": 1, "up_mbps": 1, "per_client_mbps": -1}, "per_client_mbps"),
    ],
)
def test_bad_tiers_are_refused(kwargs, message):
    with pytest.raises(ShaperError, match=message):
        Tier(**kwargs)


def test_bad_client_address_is_refused():
    with pytest.raises(ShaperError, match=r"'10\.42\.0\.300' is not an IPv4 address"):
        plan("wlan0", Tier(10, 10, 1), ["10.42.0.300"])


def test_client_addresses_are_ignored_without_a_per_client_cap():
    assert plan("wlan0", Tier(10, 10), ["10.42.0.17"]).clients == {}


@given(
    total=st.floats(min_value=0.01, max_value=10000),
    cap=st.one_of(st.none(), st.floats(min_value=0.01, max_value=10000)),
    n=st.integers(min_value=0, max_value=300),
)
def test_class_tree_invariants(total, cap, n):
    minors = {f"10.0.{i // 250}.{i % 250 + 1}": 0x10 + i for i in range(n)}
    tree = class_tree(total, cap, minors)
    root = tree[ROOT_MINOR]
    assert root.rate_kbit == root.ceil_kbit == kbit(total)
    for minor, spec in tree.items():
        if minor == ROOT_MINOR:
            continue
        assert spec.parent_minor == ROOT_MINOR
        assert 0 < spec.rate_kbit <= spec.ceil_kbit <= root.ceil_kbit
    assert len(tree) == 2 + (n if cap is not None else 0)
