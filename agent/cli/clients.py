"""`simpul-agent clients count`: count clients in a capture file or on a live interface.

    simpul-agent clients count --pcap FILE [--pcap FILE ...] [--json]
    simpul-agent clients count --interface IF --seconds S [--json]

Prints aggregates only: never a MAC, never an identity. Over a file the totals cover
the whole file and the windows end at its last frame; live, they cover the S seconds.

A file cut short inside a frame (power lost while writing) is counted up to the cut and
still exits 0, with `"truncated": true` and `cuts` in the JSON and a note on stderr; the
frames of a pcapng interface whose link type is not decoded are skipped, likewise noted.
A file that is not a capture, or is corrupt, exits 1.
"""

import argparse
import json
import sys
import time
from typing import Any, Dict, List

from agent.clients.counter import WINDOWS, ClientCounter
from agent.errors import AgentError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser("clients", help="count hotspot clients and nearby devices")
    inner = parser.add_subparsers(dest="clients_command", metavar="ACTION")
    inner.required = True
    count = inner.add_parser("count", help="count from a capture file or a live interface")
    source = count.add_mutually_exclusive_group(required=True)
    source.add_argument("--pcap", action="append", metavar="FILE", help="pcap or pcapng file")
    source.add_argument("--interface", metavar="IF", help="capture live (ARP and DHCP only)")
    count.add_argument("--seconds", type=float, help="how long to capture live")
    count.add_argument("--json", action="store_true", help="print one JSON object")
    count.set_defaults(func=run_count)


def _report(counter: ClientCounter, now: float, extra: Dict[str, Any]) -> Dict[str, Any]:
    totals = counter.totals()
    windows = {}
    for label, seconds in WINDOWS.items():
        c = counter.counts(now, seconds)
        windows[label] = c._asdict()
    report: Dict[str, Any] = dict(totals._asdict())
    report["windows"] = windows
    report["dwell"] = counter.dwell_histogram(now)
    report.update(extra)
    return report


def count_files(paths: List[str]) -> Dict[str, Any]:
    from agent.clients.files import count_file

    counter = ClientCounter(keep_totals=True)
    frames = matched = skipped_frames = 0
    last = 0.0
    skipped: List[Dict[str, Any]] = []
    cuts: List[Dict[str, Any]] = []
    for path in paths:
        stats = count_file(path, counter, truncated_ok=True)
        frames += int(stats["frames"])
        matched += int(stats["frames_matched"])
        skipped_frames += int(stats["frames_skipped"])
        last = max(last, stats["last_ts"])
        skipped.extend({"file": path, **s} for s in stats["skipped_interfaces"])
        if stats["truncated"]:
            cuts.append({"file": path, **stats["cut"]})
    extra = {
        "source": "pcap",
        "frames": frames,
        "frames_matched": matched,
        "frames_skipped": skipped_frames,
        "skipped_interfaces": skipped,
        "truncated": bool(cuts),
        "cuts": cuts,
    }
    return _report(counter, last, extra)


def file_notes(report: Dict[str, Any]) -> List[str]:
    """One line per skipped interface and per cut file, for stderr."""
    notes = []
    for s in report.get("skipped_interfaces", []):
        name = f" {s['name']!r}" if s["name"] else ""
        notes.append(
            f"{s['file']}: skipped {s['frames']} frames of interface {s['interface']}{name}"
            f" (link type {s['linktype']}, not decoded)"
        )
    for c in report.get("cuts", []):
        notes.append(
            f"{c['file']}: truncated: {c['reason']}; counted the {c['after_frame']}"
            f" whole frames before byte {c['byte']}"
        )
    return notes


def count_live(interface: str, seconds: float) -> Dict[str, Any]:
    from agent.clients.live import LiveCapture

    counter = ClientCounter(keep_totals=True)
    capture = LiveCapture(interface, counter)
    capture.open()
    # Tells a technician (and the live test) that frames are now being counted.
    print(f"counting on {interface} for {seconds:g} s ...", file=sys.stderr, flush=True)
    try:
        capture.run_for(seconds)
    finally:
        capture.close()
    extra = {"source": "interface", "seconds": seconds, **capture.stats()}
    return _report(counter, time.time(), extra)


def run_count(args: argparse.Namespace) -> int:
    if args.interface is not None:
        if args.seconds is None or args.seconds <= 0:
            raise AgentError("--interface needs --seconds S (a positive number)")
        report = count_live(args.interface, args.seconds)
    else:
        if args.seconds is not None:
            raise AgentError("--seconds goes with --interface, not --pcap")
        report = count_files(args.pcap)
        for note in file_notes(report):
            print(f"simpul-agent: warning: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(f"connected          {report['connected']}")
        print(f"nearby             {report['nearby']}")
        print(
            f"nearby_randomized  {report['nearby_randomized']}  (rotating addresses: an over-count)"
        )
        for label, c in report["windows"].items():
            print(
                f"last {label:<4} connected {c['connected']}, nearby {c['nearby']}, "
                f"randomized {c['nearby_randomized']}"
            )
        print(f"frames             {report['frames']} ({report['frames_matched']} ARP/DHCP/probe)")
        if report.get("frames_skipped"):
            print(f"frames skipped     {report['frames_skipped']} (link types not decoded)")
        if report.get("truncated"):
            print("truncated          yes: counted up to the cut (see the warning above)")
    return 0
