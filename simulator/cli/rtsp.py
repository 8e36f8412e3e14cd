"""`simpul-sim rtsp`: an RTSP responder standing in for a CCTV camera.

    simpul-sim rtsp [--host 127.0.0.1] [--port 8554] [--mode ok|status|silent|close|http]
                    [--code 503]

Prints the URL it listens on (port 0 picks a free one), then serves until Ctrl-C.
"""

import argparse
import asyncio

from simulator.rtsp import MODES, serve


def _run(args: argparse.Namespace) -> int:
    asyncio.run(serve(args.host, args.port, args.mode, args.code))
    return 0


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("rtsp", help="answer RTSP OPTIONS like a camera (or fail like one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8554, help="0 picks a free port")
    p.add_argument("--mode", choices=MODES, default="ok")
    p.add_argument("--code", type=int, default=200, help="status code for --mode status")
    p.set_defaults(func=_run)
