"""`simpul-agent tier apply|verify|remove`: shape the hotspot interface to a tier.

    simpul-agent tier apply --interface wlan0 --mbps 100 [--up-mbps 20]
                            [--per-client-mbps 10 --client 10.42.0.17 ...] [--dry-run]

`--mbps` sets download and, unless `--up-mbps` is given, upload too. `--dry-run` prints
the tc commands (planned against the interface's current state when it can be read).
"""

import argparse
import sys

from agent.shaper import Shaper, ShaperError, Tier


def _tier(args: argparse.Namespace) -> Tier:
    up = args.up_mbps if args.up_mbps is not None else args.mbps
    return Tier(down_mbps=args.mbps, up_mbps=up, per_client_mbps=args.per_client_mbps)


def _apply(args: argparse.Namespace) -> int:
    tier = _tier(args)
    shaper = Shaper(args.interface, netns=args.netns)
    if args.dry_run:
        try:
            planned = shaper.plan(tier, args.client)
        except ShaperError as exc:
            from agent.shaper.plan import plan

            print(f"# cannot read {args.interface} ({exc}); planning from scratch",
                  file=sys.stderr)  # fmt: skip
            planned = plan(args.interface, tier, args.client)
        for line in planned.render(args.netns):
            print(line)
        return 0
    result = shaper.apply(tier, args.client)
    return _report(result, args.json)


def _report(result, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    if as_json:
        print(result.to_json())
    elif result.verified:
        cap = f", {result.per_client_mbps:g} Mbit/s per client" if result.per_client_mbps else ""
        print(
            f"{result.interface}: tier {result.down_mbps:g} down / {result.up_mbps:g} up "
            f"Mbit/s{cap} applied and verified"
        )
    else:
        print(f"{result.interface}: tier NOT verified: {'; '.join(result.problems)}")
    return 0 if result.verified else 1


def _verify(args: argparse.Namespace) -> int:
    return _report(Shaper(args.interface, netns=args.netns).verify(_tier(args), args.client),
                   args.json)  # fmt: skip


def _remove(args: argparse.Namespace) -> int:
    Shaper(args.interface, netns=args.netns).remove()
    print(f"{args.interface}: shaping removed")
    return 0


def _common(p: argparse.ArgumentParser, tier: bool = True) -> None:
    p.add_argument("--interface", required=True, help="the hotspot interface, e.g. wlan0")
    p.add_argument("--netns", help=argparse.SUPPRESS)  # tests and benches
    if not tier:
        return
    p.add_argument("--mbps", type=float, required=True, help="download tier in Mbit/s")
    p.add_argument("--up-mbps", type=float, help="upload tier (default: same as --mbps)")
    p.add_argument("--per-client-mbps", type=float, help="cap for each --client address")
    p.add_argument("--client", action="append", default=[], metavar="ADDR",
                   help="a client IPv4 address to cap (repeat)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser("tier", help="shape the hotspot interface to a bandwidth tier")
    tsub = parser.add_subparsers(dest="tier_command", metavar="ACTION")
    tsub.required = True
    p = tsub.add_parser("apply", help="apply a tier and verify it by reading tc back")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="print the tc commands only")
    p.set_defaults(func=_apply)
    p = tsub.add_parser("verify", help="check that tc matches a tier; changes nothing")
    _common(p)
    p.set_defaults(func=_verify)
    p = tsub.add_parser("remove", help="take the shaping off")
    _common(p, tier=False)
    p.set_defaults(func=_remove)
