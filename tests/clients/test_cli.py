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


def test_cut_file_is_counted_up_to_the_cut_and_exits_zero(hotspot, tmp_path):
    from agent.clients.counter import ClientCounter
    from agent.clients.files import count_buffer
    from agent.clients.pcap import frames

    out, _truth = hotspot
    data = (out / "lan.pcap").read_bytes()
    spans = list(frames(data))
    k = len(spans) * 2 // 3
    _ts, _lt, off, n = spans[k]
    cut = tmp_path / "power-lost.pcap"
    cut.write_bytes(data[: off + n // 2])  # the box lost power inside frame k + 1
    whole = ClientCounter(keep_totals=True)
    count_buffer(data[: off - 16], whole)  # the k whole frames before it

    done = run_agent(["clients", "count", "--pcap", str(cut), "--json"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["truncated"] is True
    assert report["frames"] == k
    assert report["connected"] == whole.totals().connected > 0
    assert report["cuts"] == [
        {
            "file": str(cut),
            "byte": off - 16,
            "after_frame": k,
            "file_size": off + n // 2,
            "reason": report["cuts"][0]["reason"],
        }
    ]
    assert f"frame {k + 1}" in report["cuts"][0]["reason"]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and str(cut) in lines[0], done.stderr
    assert f"cut short at byte {off + n // 2}" in lines[0]
    assert f"counted the {k} whole frames before byte {off - 16}" in lines[0]

    text = run_agent(["clients", "count", "--pcap", str(cut), "--pcap", str(out / "air.pcap")])
    assert text.returncode == 0, text.stderr
    assert "truncated          yes" in text.stdout
    assert f"{cut}: truncated: frame {k + 1}: cut short" in text.stderr

    good = run_agent(["clients", "count", "--pcap", str(out / "lan.pcap"), "--json"])
    report = json.loads(good.stdout)
    assert report["truncated"] is False and report["cuts"] == [] and good.stderr == ""


def test_not_a_capture_still_exits_one(hotspot, tmp_path):
    out, _truth = hotspot
    cases = {
        "text.pcap": (b"GET / HTTP/1.1\r\n" * 8, "not a pcap or pcapng file"),
        "shb-cut.pcapng": ((out / "lan.pcapng").read_bytes()[:20], "section header"),
        "empty.pcap": (b"", "empty file"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        done = run_agent(["clients", "count", "--pcap", str(path), "--json"])
        assert done.returncode == 1, (name, done.stdout)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and str(path) in lines[0], done.stderr
        assert done.stdout == ""


def test_skipped_interface_is_reported(tmp_path):
    from tests.clients.test_capture_files import _mixed_pcapng

    path = tmp_path / "mixed.pcapng"
    path.write_bytes(_mixed_pcapng())
    done = run_agent(["clients", "count", "--pcap", str(path), "--json"])
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["connected"] == 2
    assert report["frames"] == 3 and report["frames_skipped"] == 3
    assert report["skipped_interfaces"][0] == {
        "file": str(path),
        "interface": 1,
        "linktype": 220,
        "name": "usbmon1",
        "frames": 3,
    }
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert "skipped 3 frames of interface 1 'usbmon1' (link type 220, not decoded)" in lines[0]
    assert "interface 3 'mon-<mac>' (link type 147" in lines[1]
    assert "3c:22:fb" not in done.stderr + done.stdout

    text = run_agent(["clients", "count", "--pcap", str(path)])
    assert text.returncode == 0, text.stderr
    assert "frames skipped     3" in text.stdout
