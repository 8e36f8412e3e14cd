"""`simpul-sim bootloader`: an STK500v1 (Optiboot) bootloader on a pseudo-terminal.

Prints the pty's path on the first line of stdout, then serves until SIGTERM or Ctrl-C.
`--dump FILE` writes the whole flash (raw, 0xFF where erased) after every session that
ends with LEAVE_PROGMODE, and on exit.
"""

import argparse
import os
import signal
import sys
from typing import Any, List

from simulator.stk500 import FAULTS, Bootloader, open_pty, serve


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bootloader", help="an STK500v1 (Optiboot) bootloader on a pseudo-terminal")
    p.add_argument("--link", help="also make this symlink to the pty")
    p.add_argument("--fault", choices=FAULTS, default="none", help="misbehave on purpose")
    p.add_argument("--dump", help="write the flash image (raw) here after each session")
    p.add_argument("--signature", default="1e950f", help="chip signature, hex (ATmega328P)")
    p.set_defaults(func=run)


def _dump(boot: Bootloader, path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(boot.flash)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    boot = Bootloader(signature=bytes.fromhex(args.signature), fault=args.fault)
    master, slave, path = open_pty(args.link)
    stopping: List[bool] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    print(path, flush=True)
    def dump(boot: Bootloader) -> None:
        if args.dump:
            _dump(boot, args.dump)

    try:
        serve(boot, master, lambda: bool(stopping), dump)
    finally:
        dump(boot)
        os.close(master)
        os.close(slave)
        if args.link and os.path.islink(args.link):
            os.unlink(args.link)
    print(f"pages written {boot.pages_written}, sessions {boot.sessions_ended}",
          file=sys.stderr)
    return 0

