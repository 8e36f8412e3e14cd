"""`simpul-agent clients count`: count clients in a capture file or on a live interface.

    simpul-agent clients count --pcap FILE [--pcap FILE ...] [--json]
    simpul-agent clients count --interface IF --seconds S [--json]

Prints aggregates only: never a MAC, never an identity. Over a file the totals cover
the whole file and the windows end at its last frame; live, they cover the S seconds.
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
    frames = matched = 0
    last = 0.0
    for path in paths:
        stats = count_file(path, counter)
        frames += int(stats["frames"])
        matched += int(stats["frames_matched"])
        last = max(last, stats["last_ts"])
    return _report(counter, last, {"source": "pcap", "frames": frames, "frames_matched": matched})


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
    return 0
