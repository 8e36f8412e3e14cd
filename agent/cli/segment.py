"""`simpul-agent segment apply|verify|show --config PATH`: the hotspot's firewall and the
uplink's priority classes from the [segmentation] section (docs/segmentation.md)."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("segment", help="apply or verify hotspot segmentation and priority")
    p.add_argument("action", choices=["apply", "verify", "show"])
    p.add_argument("--config", required=True, help="path to the agent's TOML config")
    p.add_argument("--backend", choices=["nft", "iptables"], default=None,
                   help="default: nft when installed, else iptables")
    p.set_defaults(func=segment)


def segment(args: argparse.Namespace) -> int:
    from agent import segmentation as seg
    from agent.config import load_config

    config = load_config(args.config)
    if config.segmentation is None:
        raise seg.SegmentationError(f"{args.config} has no [segmentation] section")
    section = config.segmentation
    if args.action == "show":
        print(seg.render_nft(section) if (args.backend or "nft") == "nft"
              else seg.render_iptables(section, 4), end="")
        for cmd in seg.uplink_tc(section):
            print(" ".join(cmd))
        for choices in seg.uplink_leaves(section):
            print(" || ".join(" ".join(cmd) for cmd in choices))
        return 0
    if args.action == "apply":
        seg.apply(section, args.backend)
        print("ok   segmentation applied and read back as planned")
        return 0
    problems = seg.verify(section, args.backend)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print("ok   segmentation is in place")
    return 1 if problems else 0
