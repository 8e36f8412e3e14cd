"""Windows, dwell histogram, keyed identities and their daily rotation."""

import pytest

from agent.clients.counter import CONNECTED, INFRA, NEARBY, ClientCounter, dwell_bucket
from agent.clients.identity import IDENT_BYTES, Keyring

pytestmark = pytest.mark.py39

UNI = bytes.fromhex("3c22fb000001")
LOCAL = bytes.fromhex("0a1122334455")
T0 = 1763900000.0


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def test_windows_slide():
    c = ClientCounter()
    c.see(CONNECTED, UNI, T0)
    c.see(CONNECTED, LOCAL, T0 + 600)
    c.see(NEARBY, LOCAL, T0 + 600)
    now = T0 + 630
    assert c.counts(now, 60) == (1, 1, 1, 1)
    assert c.counts(now, 900) == (2, 1, 1, 1)
    assert c.counts(T0 + 4000, 3600) == (1, 1, 1, 1)
    c.prune(T0 + 4300)
    assert c.counts(T0 + 4300, 3600) == (0, 0, 0, 0)


def test_infrastructure_and_group_addresses_are_never_counted():
    c = ClientCounter(keep_totals=True)
    c.see(CONNECTED, UNI, T0)
    c.see(INFRA, UNI, T0 + 1)  # learned later (a DHCP reply) still removes it
    c.see(CONNECTED, b"\xff" * 6, T0)
    c.see(CONNECTED, b"\x01\x00\x5e\x00\x00\x01", T0)
    c.see(CONNECTED, b"\x00" * 6, T0)
    assert c.counts(T0 + 2, 60).connected == 0
    assert c.totals().connected == 0


def test_dwell_sessions_split_on_idle_gap():
    c = ClientCounter(idle_s=300)
    for t in range(0, 1201, 60):  # 20 minutes of presence
        c.see(CONNECTED, UNI, T0 + t)
    c.see(CONNECTED, UNI, T0 + 2000)  # back after a gap: a new session
    hist = c.dwell_histogram(T0 + 2000)
    assert hist["15m_1h"] == 1 and hist["lt_1m"] == 1 and sum(hist.values()) == 2


def test_state_tools_connected_time_sets_the_start():
    c = ClientCounter()
    c.see(CONNECTED, UNI, T0, connected_s=7200)
    assert c.dwell_histogram(T0)["1h_4h"] == 1
    assert dwell_bucket(59) == "lt_1m" and dwell_bucket(20000) == "ge_4h"


def test_identity_is_keyed_and_short():
    a, b = Keyring(), Keyring()
    assert a.ident(UNI) == a.ident(UNI)
    assert a.ident(UNI) != b.ident(UNI)  # a fresh random key every time
    assert len(a.ident(UNI)) == IDENT_BYTES
    assert UNI.hex() not in repr(a) and "key" not in repr(a).lower().replace("keyring", "")


def test_key_rotates_at_local_midnight_and_counts_restart():
    clock = Clock(T0)
    ring = Keyring(clock=clock)
    c = ClientCounter(keyring=ring)
    before = ring.ident(UNI)
    c.see(CONNECTED, UNI, T0)
    clock.t = T0 + 86400
    c.see(CONNECTED, LOCAL, clock.t)
    assert ring.rotations == 1
    assert ring.ident(UNI) != before
    # old identities were dropped with the old key: only the new sighting is counted
    assert c.counts(clock.t, 3600).connected == 1


def test_metrics_names():
    c = ClientCounter()
    c.see(NEARBY, LOCAL, T0)
    m = c.metrics(T0)
    assert m["nearby_1m"] == 1 and m["nearby_randomized_1h"] == 1 and m["connected_15m"] == 0
    assert set(k for k in m if k.startswith("dwell_")) == {
        "dwell_lt_1m",
        "dwell_1m_5m",
        "dwell_5m_15m",
        "dwell_15m_1h",
        "dwell_1h_4h",
        "dwell_ge_4h",
    }


def test_counters_sharing_a_keyring_all_forget_on_rotation():
    clock = Clock(T0)
    ring = Keyring(clock=clock)
    first, second = ClientCounter(keyring=ring), ClientCounter(keyring=ring)
    first.see(CONNECTED, UNI, T0)
    second.see(CONNECTED, UNI, T0)
    assert first.counts(T0, 60).connected == second.counts(T0, 60).connected == 1
    clock.t = T0 + 86400
    first.see(CONNECTED, LOCAL, clock.t)  # this one notices the new day and rotates
    second.see(CONNECTED, LOCAL, clock.t)  # this one must forget as well
    assert first.counts(clock.t, 86400 * 2).connected == 1
    assert second.counts(clock.t, 86400 * 2).connected == 1
