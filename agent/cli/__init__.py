"""`simpul-agent`: the daemon and the technician's tools on the box.

Every verb lives in agent/cli/<name>.py with `register(subparsers)`, which adds its
parser and sets `func` to a callable taking the parsed args and returning the exit code.
Errors the agent raises on purpose become one plain line, never a traceback. (Commands
the fleet sends a box are another thing: agent/control/.) `python -m agent.cli` runs
`main` through __main__.py.
"""

import argparse
import importlib
import sys
from typing import Callable, List, Optional

from agent import __version__
from agent.errors import AgentError
from simpul_wire.version import installed_version

# Registered by name, in the order --help lists them.
COMMAND_MODULES = ["run", "doctor", "sensor", "clients", "tier", "segment", "update"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simpul-agent", description="Simpul agent for a public Wi-Fi / CCTV / sensor point"
    )
    parser.add_argument("--version", action="version",
                        version=f"simpul-agent {installed_version(__version__)}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"agent.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except AgentError as exc:
        print(f"simpul-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

