"""`simpul-sim fleet`: register N virtual boxes through the API and run them."""

import argparse
import json
import logging
import sys


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("fleet", help="register N virtual boxes and run them against the broker")
    p.add_argument("--fleet", required=True, help="fleet API URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--token", required=True, help="an API token (technician or above)")
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--health-interval", type=float, default=None,
                   help="seconds between health samples (default: 3 x interval)")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--drain", type=float, default=0.0,
                   help="then stop sampling and wait up to S seconds for every outbox to empty")
    p.add_argument("--prefix", default=None, help="device id prefix (default: sim-XXXX)")
    p.add_argument("--data-dir", default=None, help="where the virtual boxes' files live")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ramp", type=float, default=500.0,
                   help="boxes started per second (jittered), so the broker is not stormed")
    p.add_argument("--keepalive", type=int, default=60, help="MQTT keepalive of each box")
    p.add_argument("--resend-after", type=float, default=30.0,
                   help="outbox: send a record again when the fleet has not confirmed it "
                        "after S seconds (doubling)")
    p.add_argument("--files", action="store_true",
                   help="outboxes and ledgers as SQLite files under --data-dir, as on a box "
                        "(default: in memory, for city scale)")
    p.add_argument("--credentials", default=None,
                   help="JSON file of the boxes' credentials: written after registering, "
                        "reused (no registration) when it exists")
    p.add_argument("--scenario", default=None,
                   help="a scenario TOML file, or the name of a shipped one "
                        "(simulator/scenarios: stormy-day, district-outage, ...)")
    p.add_argument("--broker-data", default=None,
                   help="the broker's data dir (`simpul-fleet broker --data`), for scenarios "
                        "that restart it")
    p.add_argument("--report", default=None,
                   help="write per-box epochs, next seqs and outbox depths here (JSON) at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.errors import SimError
    from simulator.fleet import FleetOptions, run_fleet

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("simpul.link").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.devices < 1:
        print("simpul-sim: --devices must be at least 1", file=sys.stderr)
        return 2
    opts = FleetOptions(
        count=args.devices, interval=args.interval, health_interval=args.health_interval,
        duration=args.duration, prefix=args.prefix, data_dir=args.data_dir, seed=args.seed,
        ramp_per_s=args.ramp, in_memory=not args.files, credentials=args.credentials,
        drain_s=args.drain, report=args.report, scenario=args.scenario,
        broker_data=args.broker_data, keepalive=args.keepalive,
        resend_after=args.resend_after)
    try:
        summary = run_fleet(args.fleet, args.token, opts)
    except SimError as exc:
        print(f"simpul-sim: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
