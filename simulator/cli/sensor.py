"""`simpul-sim sensor`: one virtual serial sensor on a pseudo-terminal.

    simpul-sim sensor --driver sds011 --link /tmp/sds --garbage 0.1 --split 0.2
    simpul-sim sensor --driver pms5003 --model pms5003t --values temperature=-4.5

Prints the pty path and its stable symlink, then serves the device's exact bytes
until interrupted. Faults: --garbage P, --split P, --bad-checksum P (probabilities
per frame), --stuck, --silence-after S [--silence-for D], --unplug-after S
[--unplug-for D]; SIGUSR1 toggles unplug/replug, SIGUSR2 toggles silence.
"""

import argparse
import sys
from pathlib import Path
from typing import Any, Dict

from firmware_bridge import pms

DRIVERS = ["pms5003", "sds011", "modbus", "bridge"]
PMS_MODELS = list(pms.MODELS)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sensor", help="serve a virtual serial sensor on a pty")
    p.add_argument("--driver", required=True, choices=DRIVERS)
    p.add_argument("--model", choices=PMS_MODELS,
                   help="pms5003: the Plantower model to emit (default pms5003)")
    p.add_argument("--link", help="symlink to the pty (default /tmp/simpul-sensor-DRIVER-PID)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    p.add_argument("--values", default="",
                   help="fixed values, e.g. pm2_5=12.5,pm10=20 (default: gently varying)")
    p.add_argument("--map", dest="map_file", help="modbus: TOML register map to serve")
    p.add_argument("--duration", type=float, help="stop after S seconds")
    p.add_argument("--seed", type=int, help="random seed for faults")
    p.add_argument("--garbage", type=float, default=0.0, metavar="P")
    p.add_argument("--split", type=float, default=0.0, metavar="P")
    p.add_argument("--bad-checksum", type=float, default=0.0, metavar="P")
    p.add_argument("--stuck", action="store_true")
    p.add_argument("--silence-after", type=float, metavar="S")
    p.add_argument("--silence-for", type=float, default=5.0, metavar="D")
    p.add_argument("--unplug-after", type=float, metavar="S")
    p.add_argument("--unplug-for", type=float, default=3.0, metavar="D")
    p.set_defaults(func=run)


def _parse_values(text: str) -> Dict[str, float]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise SystemExit(f"simpul-sim: --values: {item!r} is not NAME=NUMBER")
    return out


def run(args: argparse.Namespace) -> int:
    from firmware_bridge.errors import RegisterMapError
    from simulator.sensors.devices import DEVICES, PmsDevice, Values
    from simulator.sensors.faults import Faults
    from simulator.sensors.runner import Runner, default_link

    for name in ("garbage", "split", "bad_checksum"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            print(f"simpul-sim: --{name.replace('_', '-')} is a probability, 0 to 1",
                  file=sys.stderr)
            return 2
    if args.model is not None and args.driver != "pms5003":
        print(f"simpul-sim: --model is for --driver pms5003, not {args.driver}",
              file=sys.stderr)
        return 2
    fixed = _parse_values(args.values)
    link = args.link or default_link(args.driver)
    faults = Faults(garbage=args.garbage, split=args.split, bad_checksum=args.bad_checksum,
                    stuck=args.stuck, silence_after_s=args.silence_after,
                    silence_for_s=args.silence_for, unplug_after_s=args.unplug_after,
                    unplug_for_s=args.unplug_for, seed=args.seed)
    if args.driver == "modbus":
        from simulator.sensors.modbus_slave import DEFAULT_MAP, ModbusDevice

        map_text = Path(args.map_file).read_text() if args.map_file else DEFAULT_MAP
        values = Values({**ModbusDevice.defaults, **fixed}, vary=not fixed)
        try:
            device: Any = ModbusDevice(values, args.interval, map_text)
        except RegisterMapError as exc:
            print(f"simpul-sim: {exc}", file=sys.stderr)
            return 2
        map_path = f"{link}.map.toml"
        Path(map_path).write_text(map_text)
        print(f"register map: {map_path}", flush=True)
        # RTU is framed by silence: a split must stay short (under 1.5 characters), and
        # noise between frames is followed by a frame gap (3.5 characters at 9600 baud).
        faults.split_pause_s = 0.001
        faults.garbage_pause_s = 0.005
    else:
        cls = DEVICES[args.driver]
        values = Values({**cls.defaults, **fixed}, vary=not fixed)
        if args.model is not None:
            device = PmsDevice(values, args.interval, args.model)
        else:
            device = cls(values, args.interval)
    runner = Runner(device, faults, link, say=lambda text: print(text, flush=True))
    runner.install_signals()
    print(f"serving {args.driver} on {link}", flush=True)
    runner.run(args.duration)
    return 0
