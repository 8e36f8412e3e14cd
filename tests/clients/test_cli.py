"""`simpul-agent clients count` over capture files: JSON shape, truth, clear errors."""

import json

from tests.clients.conftest import run_agent


def test_count_json_over_both_files(hotspot):
    out, truth = hotspot
    done = run_agent(
        [
            "clients",
            "count",
            "--pcap",
            str(out / "lan.pcap"),
            "--pcap",
            str(out / "air.pcapng"),
            "--json",
        ]
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["connected"] == truth["connected"]
    assert report["nearby"] == truth["nearby"]
    assert report["nearby_randomized"] == truth["nearby_randomized"]
    assert report["frames"] == truth["lan_frames"] + truth["air_frames"]
    assert set(report["windows"]) == {"1m", "15m", "1h"}
    assert sum(report["dwell"].values()) >= 1


def test_count_text(hotspot):
    out, truth = hotspot
    done = run_agent(["clients", "count", "--pcap", str(out / "air.pcap")])
    assert done.returncode == 0, done.stderr
    assert f"nearby             {truth['nearby']}" in done.stdout


def test_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 10)
    cases = [
        (["clients", "count", "--pcap", str(bad)], "cut short"),
        (["clients", "count", "--pcap", str(tmp_path / "nope.pcap")], "cannot read"),
        (["clients", "count", "--interface", "lo"], "--seconds"),
        (["clients", "count", "--interface", "nosuchif0", "--seconds", "1"], "does not exist"),
    ]
    for args, words in cases:
        done = run_agent(args)
        assert done.returncode == 1, (args, done.stdout)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], done.stderr
        assert "Traceback" not in done.stderr
