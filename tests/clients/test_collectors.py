"""The client collectors: sample configs, state sources, and failing sources."""

import os
import re
import socket
import threading

import pytest

import agent.collectors.clients as state_mod
import agent.collectors.clients_capture as capture_mod
from agent.clients.errors import ClientsError
from agent.collectors.base import Accumulator, Collector
from agent.collectors.registry import build
from agent.errors import CollectorError
from simpul_wire.config import parse_config
from simulator.hotspot_fixtures import hostapd_sta_block


def sample_toml(module):
    doc = module.__doc__
    body = doc.split("Sample config:", 1)[1]
    return "\n".join(line[4:] for line in body.splitlines())


@pytest.mark.parametrize("module", [state_mod, capture_mod])
def test_sample_configs_parse(module):
    text = '[device]\ndevice_id = "taman-01"\n' + sample_toml(module)
    config = parse_config(text)
    assert len(config.collectors) >= 3
    for section in config.collectors:
        collector = build(section)
        assert collector.name == section.name
        assert isinstance(collector, Collector)


def test_unknown_key_is_a_typo():
    text = (
        '[device]\ndevice_id = "taman-01"\n[[collectors]]\ntype = "clients_dnsmasq"\nleases = "x"\n'
    )
    with pytest.raises(Exception, match="typo"):
        parse_config(text)


def test_arpscan_refuses_a_large_subnet():
    text = '[device]\ndevice_id = "t-1"\n[[collectors]]\ntype = "clients_arpscan"\n'
    with pytest.raises(Exception, match="larger than a /22"):
        parse_config(text + 'interface = "lo"\nsubnet = "10.0.0.0/8"\n')


def collect(section_toml):
    config = parse_config('[device]\ndevice_id = "taman-01"\n[[collectors]]\n' + section_toml)
    collector = build(config.collectors[0])
    collector.start()
    try:
        acc = Accumulator()
        collector.gather(acc)
        return acc
    finally:
        collector.close()


def test_dnsmasq_iw_neigh_from_fixtures(hotspot):
    out, truth = hotspot
    n = truth["state_connected"]
    acc = collect(f'type = "clients_dnsmasq"\nleases_path = "{out / "dnsmasq.leases"}"\n')
    # Lease expiry is an hour past the simulated end, long before now: all expired.
    assert acc.metrics["leases_connected_now"] == 0
    acc = collect(f'type = "clients_iw"\ncommand = ["cat", "{out / "iw_station_dump.txt"}"]\n')
    assert acc.metrics["iw_connected_now"] == n
    assert acc.metrics["iw_connected_1m"] == n
    assert acc.sources["iw"].state == "ok"
    acc = collect(
        f'type = "clients_neigh"\nsource = "proc"\nproc_path = "{out / "proc_net_arp.txt"}"\n'
    )
    assert acc.metrics["neigh_connected_now"] == n
    acc = collect('type = "clients_neigh"\nsource = "ip"\n')  # the live kernel table
    assert acc.sources["neigh"].state == "ok"


def test_dnsmasq_current_leases(tmp_path, hotspot):
    out, truth = hotspot
    text = (out / "dnsmasq.leases").read_text()
    fresh = "\n".join("0 " + line.split(" ", 1)[1] for line in text.splitlines())
    leases = tmp_path / "leases"
    leases.write_text(fresh + "\n")
    acc = collect(f'type = "clients_dnsmasq"\nleases_path = "{leases}"\n')
    assert acc.metrics["leases_connected_now"] == truth["state_connected"]


class FakeHostapd:
    """hostapd's control socket protocol (no radio exists here): STA-FIRST / STA-NEXT."""

    def __init__(self, path, blocks):
        self.path = path
        self.blocks = blocks
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            cmd = data.decode()
            if cmd == "STA-FIRST":
                reply = self.blocks[0] if self.blocks else ""
            elif cmd.startswith("STA-NEXT "):
                macs = [b.split("\n", 1)[0] for b in self.blocks]
                at = macs.index(cmd.split()[1]) + 1
                reply = self.blocks[at] if at < len(self.blocks) else ""
            else:
                reply = "UNKNOWN COMMAND\n"
            self.sock.sendto(reply.encode(), peer)

    def close(self):
        self.sock.close()


def test_hostapd_control_socket(tmp_path):
    from simulator.hotspot import Population

    pop = Population(seed=3, clients=6, duration=300)
    blocks = [hostapd_sta_block(c, i + 1, 300) for i, c in enumerate(pop.clients)]
    path = str(tmp_path / "wlan0")
    fake = FakeHostapd(path, blocks)
    try:
        acc = collect(f'type = "clients_hostapd"\nctrl_path = "{path}"\ntimeout_s = 2\n')
    finally:
        fake.close()
    assert acc.metrics["hostapd_connected_now"] == 6
    assert sum(v for k, v in acc.metrics.items() if k.startswith("hostapd_dwell_")) == 6


def test_hostapd_walk_goes_past_a_station_still_authenticating(tmp_path):
    """hostapd's list starts with whatever joined first, associated or not: a station
    mid-handshake at the head must not end the walk, and it is counted in the reason."""
    from simulator.hotspot import Population

    pop = Population(seed=4, clients=4, duration=300)
    blocks = [hostapd_sta_block(c, i + 1, 300) for i, c in enumerate(pop.clients)]
    blocks[0] = blocks[0].replace("[AUTH][ASSOC][AUTHORIZED]", "[AUTH]")
    path = str(tmp_path / "wlan0")
    fake = FakeHostapd(path, blocks)
    try:
        acc = collect(f'type = "clients_hostapd"\nctrl_path = "{path}"\ntimeout_s = 2\n')
    finally:
        fake.close()
    assert acc.metrics["hostapd_connected_now"] == 3
    status = acc.sources["hostapd"]
    assert status.state == "ok"
    assert status.reason == "hostapd stations not associated, not counted: 1"


@pytest.mark.parametrize(
    "section, reason",
    [
        ('type = "clients_hostapd"\nctrl_path = "/nonexistent/wlan0"\n', "/nonexistent/wlan0"),
        ('type = "clients_hostapd"\ncommand = ["false"]\n', "exited 1"),
        ('type = "clients_iw"\ncommand = ["no-such-tool-here"]\n', "not installed"),
        ('type = "clients_dnsmasq"\nleases_path = "/nonexistent/leases"\n', "cannot read"),
        ('type = "clients_neigh"\nsource = "proc"\nproc_path = "/etc/hostname"\n', "header"),
        ('type = "clients_capture"\ninterface = "nosuchif0"\n', "does not exist"),
    ],
)
def test_failing_sources_raise_collector_error(section, reason):
    with pytest.raises(CollectorError, match=re.escape(reason)) as info:
        collect(section)
    assert isinstance(info.value, ClientsError)


def test_garbage_state_file_is_unavailable(tmp_path):
    garbage = tmp_path / "leases"
    garbage.write_bytes(os.urandom(512))
    with pytest.raises(CollectorError, match="leases"):
        collect(f'type = "clients_dnsmasq"\nleases_path = "{garbage}"\n')


def test_hostapd_that_never_answers(tmp_path):
    path = str(tmp_path / "mute")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mute.bind(path)
    try:
        with pytest.raises(CollectorError, match="did not answer"):
            collect(f'type = "clients_hostapd"\nctrl_path = "{path}"\ntimeout_s = 0.3\n')
    finally:
        mute.close()
