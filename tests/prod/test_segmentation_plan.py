"""The segmentation plan: sample config, rendering and read-back parsers (pure)."""

import pytest

from agent import segmentation as seg
from simpul_wire.config import parse_config

pytestmark = pytest.mark.py39


def sample() -> seg.SegmentationSection:
    doc = seg.__doc__ or ""
    toml = doc[doc.index("[segmentation]"):]
    text = '[device]\ndevice_id = "box-s"\n' + "\n".join(
        line.strip() for line in toml.splitlines())
    config = parse_config(text)
    assert config.segmentation is not None
    return config.segmentation


def test_sample_config_parses_and_renders() -> None:
    section = sample()
    assert section.uplink_mbps == 20 and section.protected(4) == ["192.168.50.0/24",
                                                                  "10.99.0.0/16"]
    text = seg.render_nft(section)
    assert 'iifname "wlan0" ip daddr { 192.168.50.0/24, 10.99.0.0/16 } drop' in text
    assert text.startswith("table inet simpul_seg {}\ndelete table inet simpul_seg\n")
    ids = seg.expected_ids(section)
    assert ids["input"][-1] == "in-drop-hotspot" and "fwd-protected6" not in ids["forward"]
    rules = seg.render_iptables(section, 4)
    assert "-A SIMPUL-FWD -i wlan0 ! -o eth0 -j DROP" in rules
    assert seg.parse_iptables_ids(rules.replace("\n-A", "\n-A")) == {
        "input": ids["input"], "forward": ["fwd-protected4", "fwd-protected4",
                                           "fwd-only-uplink", "mark-hotspot",
                                           "mark-camera4"], "output": ["mark-box"]}


@pytest.mark.parametrize("bad", [{"hotspot_interface": "wlan0; rm -rf /"},
                                 {"camera_networks": ["300.1.1.0/24"]},
                                 {"hotspot_udp_ports": [0]}, {"priority_share": 1.5}])
def test_bad_sections_are_refused(bad: dict) -> None:  # type: ignore[type-arg]
    raw = {"hotspot_interface": "wlan0", "uplink_interface": "eth0", **bad}
    with pytest.raises(ValueError):
        seg.SegmentationSection.model_validate(raw)


def test_tc_class_text_is_read() -> None:
    listing = ("class htb 1:10 parent 1:1 prio 0 rate 10Mbit ceil 20Mbit burst 1600b cburst "
               "1600b \nclass htb 1:1 root rate 20Mbit ceil 20Mbit burst 1600b cburst 1600b \n"
               "class htb 1:30 parent 1:1 prio 1 rate 9500Kbit ceil 20Mbit burst 1600b\n")
    got = seg.parse_tc_classes(listing)
    assert got == {"1:10": (10_000_000, 20_000_000), "1:1": (20_000_000, 20_000_000),
                   "1:30": (9_500_000, 20_000_000)}
    assert seg.has_our_root("qdisc htb 1: root refcnt 2 r2q 10 default 0x30 direct_packets_stat 0")
    assert not seg.has_our_root("qdisc htb 1: root refcnt 2 r2q 10 default 0xfffe")


def test_nft_json_read_back() -> None:
    listing = ('{"nftables": [{"metainfo": {}}, {"chain": {"family": "inet", "name": "input"}},'
               ' {"rule": {"chain": "input", "comment": "simpul:in-established"}},'
               ' {"rule": {"chain": "input", "comment": "someone else"}},'
               ' {"chain": {"family": "inet", "name": "output"}}]}')
    assert seg.parse_nft_ids(listing) == {"input": ["in-established"], "output": []}


def test_segment_show_and_missing_section(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from agent.cli import main

    doc = seg.__doc__ or ""
    toml = "\n".join(line.strip() for line in doc[doc.index("[segmentation]"):].splitlines())
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\ndevice_id = "box-s"\ndata_dir = "{tmp_path}"\n{toml}\n')
    assert main(["segment", "show", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "table inet simpul_seg" in out and "tc class replace dev eth0" in out
    config.write_text(f'[device]\ndevice_id = "box-s"\ndata_dir = "{tmp_path}"\n')
    assert main(["segment", "verify", "--config", str(config)]) == 1
    assert "no [segmentation] section" in capsys.readouterr().err


def test_leaf_falls_back_to_a_short_fifo_and_then_to_the_default() -> None:
    section = sample()
    assert seg.fifo_limit(20) == 82 and seg.fifo_limit(0.5) == 10
    leaves = seg.uplink_leaves(section)
    assert [[cmd[-1] if cmd[-1] == "fq_codel" else cmd[-3] for cmd in leaf]
            for leaf in leaves] == [["fq_codel", "pfifo"]] * 2
    ran = []

    def kernel(known: set):  # type: ignore[no-untyped-def,type-arg]
        def runner(cmd, stdin):  # type: ignore[no-untyped-def]
            ran.append(cmd)
            if cmd[cmd.index("handle") + 2] not in known:
                raise seg.SegmentationError("Specified qdisc kind is unknown.")
            return ""
        return runner

    assert seg.apply_leaf(leaves[0], kernel({"fq_codel", "pfifo"})) == "fq_codel"
    assert seg.apply_leaf(leaves[0], kernel({"pfifo"})) == "pfifo"
    assert seg.apply_leaf(leaves[0], kernel(set())) is None
    assert len(ran) == 1 + 2 + 2
