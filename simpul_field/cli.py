"""`simpul-field`: the field technician's tools (flash a sensor board; provision a box).

Every verb lives in simpul_field/verbs/<name>.py with `register(subparsers)`, which
adds its parser and sets `func` to a callable taking the parsed args and returning the
exit code. Register a new one by adding its module name to VERB_MODULES. A verb imports
its heavy packages inside `func`, after `require()` (extras.py), so `--help` and
`--version` work in an agent-only install.
Errors raised on purpose (FieldError, and firmware_bridge's BridgeError from the
flasher) become one plain line and the error's `exit_code` (1 unless the class says
otherwise), never a traceback.
"""

import argparse
import importlib
import sys
from typing import Callable, List, Optional

from firmware_bridge.errors import BridgeError
from simpul_field.errors import FieldError, MissingExtraError
from simpul_field.extras import missing_message, optional_module
from simpul_wire.version import installed_version

PROG = "simpul-field"
# Registered by name, in the order --help lists them.
VERB_MODULES: List[str] = ["flash", "provision"]


def version() -> str:
    """The installed distribution's version; the package's own in a bare checkout."""
    from simpul_field import __version__

    return installed_version(__version__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Simpul field technician's tools")
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in VERB_MODULES:
        importlib.import_module(f"simpul_field.verbs.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (FieldError, BridgeError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))
    except ImportError as exc:
        # A lazy import that require() did not foresee: still one line, if it is ours.
        missing = optional_module(exc)
        if missing is None:
            raise
        print(f"{PROG}: {missing_message(args.command, [missing])}", file=sys.stderr)
        return MissingExtraError.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
