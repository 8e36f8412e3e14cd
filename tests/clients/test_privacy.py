"""Privacy: count a whole population, then search every output for any of its MACs.

Outputs searched: the CLI's stdout and stderr (JSON and text, success and failure), every
file the CLI left in its working and temporary directories, the collectors' metrics and
`unavailable` reasons, and every log record captured meanwhile. The lead extends this to
the MQTT payloads and the outbox once they exist in this branch.
"""

import json
import logging
import os
from pathlib import Path
from typing import Iterable, List

from agent.clients.mac import parse_mac
from agent.collectors.base import Accumulator
from agent.collectors.registry import build
from agent.errors import CollectorError
from simpul_wire.config import parse_config
from tests.clients.conftest import run_agent


def mac_forms(mac: str) -> List[str]:
    """The textual forms a MAC is commonly written in."""
    raw = parse_mac(mac)
    assert raw is not None
    h = raw.hex()
    forms = {
        ":".join(h[i : i + 2] for i in range(0, 12, 2)),
        "-".join(h[i : i + 2] for i in range(0, 12, 2)),
        ".".join(h[i : i + 4] for i in range(0, 12, 4)),
        h,
    }
    return sorted(forms | {f.upper() for f in forms})


def find_macs(text: str, macs: Iterable[str]) -> List[str]:
    return [form for mac in macs for form in mac_forms(mac) if form in text]


def find_in_files(root: Path, macs: List[str]) -> List[str]:
    hits = []
    raws = [parse_mac(m) for m in macs]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: raw bytes" for raw in raws if raw in data]
            hits += [f"{path}: {f}" for f in find_macs(data.decode("latin-1"), macs)]
    return hits


def test_cli_outputs_hold_no_mac(hotspot, tmp_path):
    out, truth = hotspot
    macs = truth["population_macs"]
    assert len(macs) >= truth["connected"] + truth["nearby"] - 5  # the search has targets
    work = tmp_path / "work"
    work.mkdir()
    cut = tmp_path / "cut.pcap"  # input, kept outside the searched directory
    cut.write_bytes((out / "lan.pcap").read_bytes()[:5000])
    files = [str(out / n) for n in ("lan.pcap", "lan.pcapng", "air.pcap", "air.pcapng")]
    pcaps = [arg for f in files for arg in ("--pcap", f)]
    runs = [
        ["clients", "count", *pcaps, "--json"],
        ["clients", "count", *pcaps],
        ["clients", "count", "--pcap", str(cut), "--json"],
    ]
    env_backup = dict(os.environ)
    os.environ.update({"HOME": str(work), "TMPDIR": str(work)})
    try:
        results = [run_agent(args) for args in runs]
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    assert json.loads(results[0].stdout)["connected"] == truth["connected"]
    # A cut capture is counted up to the cut and exits 0 (docs/clients.md), and its
    # warning line names bytes and frames, never an address.
    assert results[2].returncode == 0, results[2].stderr
    assert json.loads(results[2].stdout)["truncated"] is True
    assert "truncated" in results[2].stderr
    for done in results:
        assert find_macs(done.stdout + done.stderr, macs) == []
    assert find_in_files(work, macs) == []


def test_collector_outputs_and_logs_hold_no_mac(hotspot, tmp_path, caplog):
    out, truth = hotspot
    macs = truth["population_macs"]
    fresh = tmp_path / "leases"
    lines = (out / "dnsmasq.leases").read_text().splitlines()
    fresh.write_text("".join("0 " + line.split(" ", 1)[1] + "\n" for line in lines))
    # Garbage that quotes population MACs in malformed lines: the reasons must not.
    mac = macs[0]
    bad_leases = tmp_path / "bad.leases"
    bad_leases.write_text(f"1763903600 {mac}-x 10.0.0.1 phone *\n")
    bad_iw = tmp_path / "bad_iw.txt"
    bad_iw.write_text(f"Station {mac.upper()} on wlan0\n")
    bad_arp = tmp_path / "bad_arp"
    bad_arp.write_text(f"IP address HW type Flags HW address Mask Device\n1 0x1 0x2 {mac}x * br0\n")
    iw, sta, arp = (
        out / n for n in ("iw_station_dump.txt", "hostapd_all_sta.txt", "proc_net_arp.txt")
    )
    sections = [
        f'type = "clients_dnsmasq"\nname = "a"\nleases_path = "{fresh}"\n',
        f'type = "clients_iw"\nname = "b"\ncommand = ["cat", "{iw}"]\n',
        f'type = "clients_hostapd"\nname = "c"\ncommand = ["cat", "{sta}"]\n',
        f'type = "clients_neigh"\nname = "d"\nsource = "proc"\nproc_path = "{arp}"\n',
        f'type = "clients_dnsmasq"\nname = "e"\nleases_path = "{bad_leases}"\n',
        f'type = "clients_iw"\nname = "f"\ncommand = ["cat", "{bad_iw}"]\n',
        f'type = "clients_neigh"\nname = "g"\nsource = "proc"\nproc_path = "{bad_arp}"\n',
        f'type = "clients_hostapd"\nname = "h"\n'
        f'command = ["sh", "-c", "echo no station {mac} >&2; exit 3"]\n',
    ]
    caplog.set_level(logging.DEBUG)
    acc = Accumulator()
    reasons = []
    text = '[device]\ndevice_id = "taman-01"\n' + "".join("[[collectors]]\n" + s for s in sections)
    for section in parse_config(text).collectors:
        collector = build(section)
        collector.start()
        try:
            collector.gather(acc)
        except CollectorError as exc:
            logging.getLogger("agent.collectors").warning("%s unavailable: %s", section.name, exc)
            acc.status(section.name, "unavailable", str(exc))
            reasons.append(str(exc))
        finally:
            collector.close()
    assert acc.metrics["a_connected_now"] == truth["state_connected"]
    assert len(reasons) == 4, reasons
    assert (
        sum("<mac>" in r for r in reasons) >= 3
    )  # the garbage did quote MACs  # every garbage source became unavailable, with a reason
    published = json.dumps(
        {"metrics": acc.metrics, "sources": {k: v.model_dump() for k, v in acc.sources.items()}}
    )
    assert find_macs(published, macs) == []
    assert find_macs(caplog.text, macs) == []
    assert find_macs(" ".join(r.getMessage() for r in caplog.records), macs) == []


def test_the_search_finds_what_it_looks_for():
    """Guard against a search that cannot fail."""
    mac = "0a:1b:2c:3d:4e:5f"
    for text in ("x 0A-1B-2C-3D-4E-5F y", "0a1b.2c3d.4e5f", "id=0a1b2c3d4e5f"):
        assert find_macs(text, [mac]) != []
