"""`simpul-field`: the field technician's tools (flash a sensor board; provision a box).

Every subcommand lives in firmware_bridge/commands/<name>.py with `register(subparsers)`,
which adds its parser and sets `func` to a callable taking the parsed args and returning
the exit code. Register a new one by adding its module name to COMMAND_MODULES.
Errors raised on purpose (BridgeError and its subclasses) become one plain line and
the error's `exit_code` (1 unless the class says otherwise), never a traceback.
"""

import argparse
import importlib
import sys
from typing import Callable, List, Optional

from firmware_bridge.errors import BridgeError

# Registered by name, in the order --help lists them.
COMMAND_MODULES: List[str] = ["flash", "provision"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simpul-field", description="Simpul field technician's tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"firmware_bridge.commands.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BridgeError as exc:
        print(f"simpul-field: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        print("simpul-field: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
