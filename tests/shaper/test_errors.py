"""tc's own error text (captured from real runs here) mapped to plain causes."""

import pytest

from agent.shaper.apply import has_cap_net_admin
from agent.shaper.errors import MissingFeature, NoSuchInterface, NotPermitted, ShaperError, classify

pytestmark = pytest.mark.py39


@pytest.mark.parametrize(
    ("cmd", "stderr", "kind", "words"),
    [
        ("ip link add name ifb-wlan0 type ifb", "Error: Unknown device type.\n",
         MissingFeature, "lacks IFB devices (CONFIG_IFB"),
        ("tc qdisc replace dev wlan0 root handle 1: htb default fffe",
         "Error: Specified qdisc kind is unknown.\n", MissingFeature, "lacks the HTB qdisc"),
        ("tc qdisc add dev wlan0 handle ffff: ingress", "Error: Specified qdisc kind is unknown.\n",
         MissingFeature, "lacks the ingress qdisc"),
        ("tc filter add dev wlan0 parent ffff: protocol all prio 1 u32 match u32 0 0 action "
         "mirred egress redirect dev ifb-wlan0",
         "Error: Failed to load TC action module.\nWe have an error talking to the kernel\n",
         MissingFeature, "lacks the mirred action"),
        ("tc filter add dev wlan0 parent 1: protocol ip prio 5 handle 2: u32 divisor 256",
         "Error: TC classifier not found.\nWe have an error talking to the kernel\n",
         MissingFeature, "lacks the u32 classifier"),
        ("tc qdisc replace dev wlan0 root handle 1: htb default fffe",
         "RTNETLINK answers: Operation not permitted\n", NotPermitted, "CAP_NET_ADMIN"),
        ("tc qdisc replace dev nope0 root handle 1: htb default fffe",
         'Cannot find device "nope0"\n', NoSuchInterface, "interface nope0 does not exist"),
        # Two appliers racing (seen before the per-interface lock): not a missing feature.
        ("tc qdisc replace dev hs0 root handle 1: htb default fffe",
         "Error: Change operation not supported by specified qdisc.\n", ShaperError,
         "failed: Error: Change operation not supported by specified qdisc."),
        ("tc class add dev wlan0 parent 1: classid 1:1 htb rate 1kbit",
         "RTNETLINK answers: File exists\n", ShaperError, "failed: RTNETLINK answers: File exists"),
    ],
)  # fmt: skip
def test_classify(cmd, stderr, kind, words):
    device = "nope0" if "nope0" in cmd else "wlan0"
    err = classify(cmd.split(), stderr, device)
    assert type(err) is kind
    assert words in str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("capeff", "expected"),
    [("000001ffffffffff", True), ("0000000000000000", False), ("0000000000001000", True),
     ("0000000000002000", False)],
)  # fmt: skip
def test_cap_net_admin_bit(capeff, expected):
    status = f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{capeff}\n"
    assert has_cap_net_admin(status) is expected
