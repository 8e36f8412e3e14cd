"""`simpul-sim fleet`: register N virtual boxes through the API and run them."""

import argparse
import logging
import sys


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("fleet", help="register N virtual boxes and run them against the broker")
    p.add_argument("--fleet", required=True, help="fleet API URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--token", required=True, help="an API token (technician or above)")
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--prefix", default=None, help="device id prefix (default: sim-XXXX)")
    p.add_argument("--data-dir", default=None, help="where the virtual outboxes live")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from simulator.fleet import SimError, run_fleet

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.devices < 1:
        print("simpul-sim: --devices must be at least 1", file=sys.stderr)
        return 2
    try:
        run_fleet(args.fleet, args.token, args.devices, args.interval, args.duration,
                  args.prefix, args.data_dir, args.seed)
    except SimError as exc:
        print(f"simpul-sim: {exc}", file=sys.stderr)
        return 1
    return 0
