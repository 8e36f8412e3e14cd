"""`simpul-sim`: simulated fleets, sensors, hotspots and boards.

Each verb lives in simulator/cli/<name>.py with `register(subparsers)`; `python -m
simulator.cli` runs `main` through __main__.py.
"""

import argparse
import importlib
from typing import Callable, List, Optional

from agent import __version__
from simpul_wire.version import installed_version

COMMAND_MODULES: List[str] = ["fleet", "sensor", "bootloader", "rtsp", "hotspot"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simpul-sim", description="Simpul simulators")
    parser.add_argument("--version", action="version",
                        version=f"simpul-sim {installed_version(__version__)}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"simulator.cli.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130

