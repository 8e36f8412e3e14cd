"""Read-back parsing against real tc output (iproute2 6.1) and the plan comparison."""

import json
from pathlib import Path

import pytest

from agent.shaper.errors import ShaperError
from agent.shaper.plan import ClassSpec, Tier, plan
from agent.shaper.readback import (
    compare,
    device_state,
    parse_classes,
    parse_client_filters,
    parse_mirred,
    parse_qdiscs,
    rate_kbit,
)

pytestmark = pytest.mark.py39
DATA = Path(__file__).parent / "data"
# The fixtures were captured after:
#   simpul-agent tier apply --interface hs0 --mbps 100 --up-mbps 20 --per-client-mbps 10
#       --client 10.42.0.17 --client 10.42.0.23
TIER = Tier(100, 20, 10)
CLIENTS = ["10.42.0.17", "10.42.0.23"]


def _read(name):
    return (DATA / name).read_text()


def _states():
    down = device_state(_read("qdisc_hs0.json"), _read("class_hs0.txt"),
                        _read("filter_hs0.json"), _read("ingress_hs0.json"))  # fmt: skip
    up = device_state(_read("qdisc_ifb.json"), _read("class_ifb.txt"), _read("filter_ifb.json"))
    return down, up


@pytest.mark.parametrize(
    ("text", "kbit"),
    [("100Mbit", 100000), ("33333Kbit", 33333), ("6666Kbit", 6666), ("1Gbit", 1000000),
     ("8bit", 0), ("1.5Mbit", 1500)],
)  # fmt: skip
def test_rates_as_tc_prints_them(text, kbit):
    assert rate_kbit(text) == kbit


def test_unreadable_rate_is_an_error():
    with pytest.raises(ShaperError, match="cannot read tc rate '100Mbps'"):
        rate_kbit("100Mbps")


def test_htb_classes_from_text_with_stats():
    classes = parse_classes(_read("class_hs0.txt"))
    assert {m: c.spec for m, c in classes.items()} == {
        0x1: ClassSpec(0x1, 0, 100000, 100000),
        0x10: ClassSpec(0x10, 0x1, 10000, 10000),
        0x11: ClassSpec(0x11, 0x1, 10000, 10000),
        0xFFFE: ClassSpec(0xFFFE, 0x1, 33333, 100000),
    }
    assert classes[0x1].sent_bytes == 0


def test_htb_classes_from_json_when_iproute2_prints_it():
    text = ('[{"class":"htb","handle":"1:1","parent":"root","rate":12500000,"ceil":12500000,'
            '"stats":{"bytes":42,"packets":1,"drops":0}},'
            '{"class":"htb","handle":"1:fffe","parent":"1:1","rate":4166625,"ceil":12500000}]')
    classes = parse_classes(text)
    assert classes[1].spec == ClassSpec(1, 0, 100000, 100000)
    assert classes[1].sent_bytes == 42
    assert classes[0xFFFE].spec == ClassSpec(0xFFFE, 1, 33333, 100000)


def test_sent_counters_are_read_per_class():
    text = ("class htb 1:1 root rate 300Mbit ceil 300Mbit burst 1537b cburst 1537b \n"
            " Sent 603212001 bytes 398420 pkt (dropped 12, overlimits 0 requeues 0) \n")
    stats = parse_classes(text)[1]
    assert (stats.sent_bytes, stats.sent_packets, stats.dropped) == (603212001, 398420, 12)


def test_qdiscs_filters_and_redirect():
    assert parse_qdiscs(_read("qdisc_hs0.json")) == (True, True, True)
    assert parse_qdiscs(_read("qdisc_ifb.json")) == (True, True, False)
    assert parse_qdiscs('[{"kind":"htb","handle":"1:","root":true,"options":{"default":"0x10"}}]') \
        == (False, True, False)
    assert parse_qdiscs('[{"kind":"noqueue","handle":"0:","root":true,"options":{}}]') \
        == (False, False, False)
    assert parse_client_filters(_read("filter_hs0.json")) == (
        True, True, {"10.42.0.17": 0x10, "10.42.0.23": 0x11})
    assert parse_client_filters(_read("filter_ifb.json"))[2] == {
        "10.42.0.17": 0x10, "10.42.0.23": 0x11}
    assert parse_mirred(_read("ingress_hs0.json")) == "ifb-hs0"
    assert parse_mirred("") is None


def test_real_readback_verifies_against_its_own_plan():
    down, up = _states()
    expected = plan("hs0", TIER, CLIENTS, down, up)
    assert compare(expected, down, up) == []
    assert [c for c in expected.commands if c[0] == "tc"] == []


@pytest.mark.parametrize(
    ("tier", "clients", "problem"),
    [
        (Tier(300, 20, 10), CLIENTS,
         "hs0: class 1:1 is rate 100000kbit ceil 100000kbit, "
         "planned rate 300000kbit ceil 300000kbit"),
        (Tier(100, 20, 10), ["10.42.0.17"], "hs0: unexpected class 1:11"),
        (Tier(100, 20, 10), [*CLIENTS, "10.42.0.5"], "hs0: class 1:12 missing"),
        (Tier(100, 20), CLIENTS, "ifb-hs0: unexpected class 1:10"),
    ],
)  # fmt: skip
def test_comparison_names_each_difference(tier, clients, problem):
    down, up = _states()
    assert problem in compare(plan("hs0", tier, clients, down, up), down, up)


def test_missing_ifb_and_redirect_are_reported():
    down, _ = _states()
    absent = device_state("", "", "", exists=False)
    problems = compare(plan("hs0", TIER, CLIENTS, down, absent), down, absent)
    assert "ifb-hs0: device missing" in problems
    bare = device_state('[{"kind":"noqueue","handle":"0:","root":true}]', "", "", "")
    problems = compare(plan("hs0", TIER, CLIENTS, bare, absent), bare, absent)
    assert "hs0: root qdisc is not htb 1: default fffe" in problems
    assert "hs0: no ingress qdisc" in problems


def test_missing_link_filter_is_reported():
    # Without the 800:: filter that hashes into table 2:, no client filter is reached.
    filters = [f for f in json.loads(_read("filter_hs0.json"))
               if (f.get("options") or {}).get("link") != "2:"]  # fmt: skip
    down = device_state(_read("qdisc_hs0.json"), _read("class_hs0.txt"), json.dumps(filters),
                        _read("ingress_hs0.json"))  # fmt: skip
    _, up = _states()
    problems = compare(plan("hs0", TIER, CLIENTS, down, up), down, up)
    assert problems == ["hs0: per-client hash table or its link filter missing"]
    # ...and the plan puts the table and the link back.
    lines = [x for x in plan("hs0", TIER, CLIENTS, down, up).render() if x.startswith("tc")]
    assert lines == [
        "tc filter add dev hs0 parent 1: protocol ip prio 5 u32 ht 800:: match ip dst "
        "0.0.0.0/0 hashkey mask 0x000000ff at 16 link 2:"
    ]
