"""Segmentation at the point: hotspot users reach the internet through the uplink and
nothing else; the box's own and the cameras' traffic go first on the shared uplink.

    hotspot (e.g. wlan0) ──► box input:   DHCP and DNS only (hotspot_udp/tcp_ports)
                        ──► forward:     only out of the uplink, never to a camera or
                                         management network (IPv4 and IPv6)
    uplink egress (e.g. eth0):
      qdisc htb 1: default 30
      └── class 1:1   rate=uplink ceil=uplink
          ├── class 1:10 prio 0 rate=uplink*priority_share ceil=uplink   priority 1:10:
          │                the box's own traffic (telemetry, MQTT) and the cameras'
          └── class 1:30 prio 1 rate=rest ceil=uplink         priority 1:30: hotspot users,
                           and anything unmarked; fq_codel leaves where the kernel has
                           it, else a 50 ms pfifo
The bandwidth shaper (agent.shaper, docs/tiers.md) shapes the hotspot interface and its
IFB twin; this tree is on the uplink, so the two never touch each other's qdiscs.

Rules live in one nftables table, `inet simpul_seg`, replaced in one transaction. Where
nft is missing, the same rules go into iptables/ip6tables chains SIMPUL-IN, SIMPUL-FWD
and SIMPUL-MARK. Every rule carries a comment `simpul:<id>`; verifying reads the rules
back and compares the ids per chain with the plan (and tc's classes with the plan), so
a rule someone deleted by hand is found. Rendering and parsing are pure functions.

Sample config (local part of the agent's TOML; the interfaces are hardware):

    [segmentation]
    hotspot_interface = "wlan0"
    uplink_interface = "eth0"
    camera_networks = ["192.168.50.0/24"]
    management_networks = ["10.99.0.0/16"]
    uplink_mbps = 20
"""

import json
import logging
import re
import shutil
import subprocess
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from agent.errors import AgentError
from simpul_wire.config import SegmentationSection

log = logging.getLogger("simpul.segmentation")

TABLE = "simpul_seg"
# HTB takes a packet whose skb->priority names one of its leaf classes straight into it,
# so the rules set the priority and no tc classifier module is needed.
PRIORITY_CLASS = "1:10"
HOTSPOT_CLASS = "1:30"

Runner = Callable[[Sequence[str], Optional[str]], str]


class SegmentationError(AgentError):
    """Rules that could not be applied or do not read back as planned."""


# -- the plan: rule ids per chain, the same for both backends --------------------------
def expected_ids(seg: SegmentationSection) -> Dict[str, List[str]]:
    inp = ["in-established"]
    inp += ["in-allow-udp"] if seg.hotspot_udp_ports else []
    inp += ["in-allow-tcp"] if seg.hotspot_tcp_ports else []
    inp += ["in-drop-hotspot"]
    fwd = [f"fwd-protected{v}" for v in (4, 6) if seg.protected(v)]
    fwd += ["fwd-only-uplink", "mark-hotspot"]
    fwd += [f"mark-camera{v}" for v in (4, 6) if seg.cameras(v)]
    return {"input": inp, "forward": fwd, "output": ["mark-box"]}


def _set(items: Sequence[object]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


def render_nft(seg: SegmentationSection) -> str:
    """The whole table, for `nft -f -`: created empty, deleted and rebuilt atomically."""
    hs, up = json.dumps(seg.hotspot_interface), json.dumps(seg.uplink_interface)

    def c(rule_id: str) -> str:
        return f'comment "simpul:{rule_id}"'

    inp = [f"iifname {hs} ct state established,related accept {c('in-established')}"]
    if seg.hotspot_udp_ports:
        inp.append(f"iifname {hs} udp dport {_set(seg.hotspot_udp_ports)} accept "
                   f"{c('in-allow-udp')}")
    if seg.hotspot_tcp_ports:
        inp.append(f"iifname {hs} tcp dport {_set(seg.hotspot_tcp_ports)} accept "
                   f"{c('in-allow-tcp')}")
    inp.append(f"iifname {hs} drop {c('in-drop-hotspot')}")
    fwd = []
    for version, family in ((4, "ip"), (6, "ip6")):
        if seg.protected(version):
            fwd.append(f"iifname {hs} {family} daddr {_set(seg.protected(version))} drop "
                       f"{c(f'fwd-protected{version}')}")
    fwd.append(f"iifname {hs} oifname != {up} drop {c('fwd-only-uplink')}")
    fwd.append(f"iifname {hs} meta priority set {HOTSPOT_CLASS} {c('mark-hotspot')}")
    for version, family in ((4, "ip"), (6, "ip6")):
        if seg.cameras(version):
            fwd.append(f"{family} saddr {_set(seg.cameras(version))} oifname {up} "
                       f"meta priority set {PRIORITY_CLASS} {c(f'mark-camera{version}')}")
    out = [f"oifname {up} meta priority set {PRIORITY_CLASS} {c('mark-box')}"]

    def chain(name: str, hook: str, rules: List[str]) -> str:
        body = "".join(f"\t\t{r}\n" for r in rules)
        return (f"\tchain {name} {{\n\t\ttype filter hook {hook} priority 0; "
                f"policy accept;\n{body}\t}}\n")

    return (f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"
            f"table inet {TABLE} {{\n" + chain("input", "input", inp)
            + chain("forward", "forward", fwd) + chain("output", "output", out) + "}\n")


def parse_nft_ids(listing: str) -> Dict[str, List[str]]:
    """`nft -j list table inet simpul_seg` → rule ids (from comments) per chain."""
    found: Dict[str, List[str]] = {}
    for item in json.loads(listing).get("nftables", []):
        if "chain" in item:
            found.setdefault(item["chain"]["name"], [])
        rule = item.get("rule")
        if rule is not None:
            comment = str(rule.get("comment", ""))
            if comment.startswith("simpul:"):
                found.setdefault(rule["chain"], []).append(comment[len("simpul:"):])
    return found


# -- iptables fallback ----------------------------------------------------------------
CHAINS = {"input": ("filter", "INPUT", "SIMPUL-IN"), "forward": ("filter", "FORWARD",
                                                                   "SIMPUL-FWD"),
          "mark": ("mangle", "FORWARD", "SIMPUL-MARK"),
          "output": ("mangle", "OUTPUT", "SIMPUL-OUT")}


def render_iptables(seg: SegmentationSection, version: int) -> str:
    """iptables-restore --noflush input: our chains flushed and filled, nothing else."""
    hs, up = seg.hotspot_interface, seg.uplink_interface

    def c(rule_id: str) -> str:
        return f'-m comment --comment "simpul:{rule_id}"'

    ports = ",".join
    filt = [f"-A SIMPUL-IN -i {hs} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT "
            f"{c('in-established')}"]
    if seg.hotspot_udp_ports:
        filt.append(f"-A SIMPUL-IN -i {hs} -p udp -m multiport --dports "
                    f"{ports(map(str, seg.hotspot_udp_ports))} -j ACCEPT {c('in-allow-udp')}")
    if seg.hotspot_tcp_ports:
        filt.append(f"-A SIMPUL-IN -i {hs} -p tcp -m multiport --dports "
                    f"{ports(map(str, seg.hotspot_tcp_ports))} -j ACCEPT {c('in-allow-tcp')}")
    filt.append(f"-A SIMPUL-IN -i {hs} -j DROP {c('in-drop-hotspot')}")
    for net in seg.protected(version):
        filt.append(f"-A SIMPUL-FWD -i {hs} -d {net} -j DROP {c(f'fwd-protected{version}')}")
    filt.append(f"-A SIMPUL-FWD -i {hs} ! -o {up} -j DROP {c('fwd-only-uplink')}")
    mangle = [f"-A SIMPUL-MARK -i {hs} -j CLASSIFY --set-class {HOTSPOT_CLASS} "
              f"{c('mark-hotspot')}"]
    for net in seg.cameras(version):
        mangle.append(f"-A SIMPUL-MARK -s {net} -o {up} -j CLASSIFY --set-class "
                      f"{PRIORITY_CLASS} {c(f'mark-camera{version}')}")
    mangle.append(f"-A SIMPUL-OUT -o {up} -j CLASSIFY --set-class {PRIORITY_CLASS} "
                  f"{c('mark-box')}")
    return ("*filter\n:SIMPUL-IN - [0:0]\n:SIMPUL-FWD - [0:0]\n" + "\n".join(filt)
            + "\nCOMMIT\n*mangle\n:SIMPUL-MARK - [0:0]\n:SIMPUL-OUT - [0:0]\n"
            + "\n".join(mangle) + "\nCOMMIT\n")


def parse_iptables_ids(saved: str) -> Dict[str, List[str]]:
    """`iptables-save` → rule ids per logical chain (input, forward, output), with the
    mangle FORWARD marks counted under forward, as nft has them."""
    names = {"SIMPUL-IN": "input", "SIMPUL-FWD": "forward", "SIMPUL-MARK": "forward",
             "SIMPUL-OUT": "output"}
    found: Dict[str, List[str]] = {}
    for line in saved.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0] == "-A" and parts[1] in names:
            match = re.search(r'--comment "?simpul:([a-z0-9-]+)', line)
            if match:
                found.setdefault(names[parts[1]], []).append(match.group(1))
    return found


# -- the uplink's priority tree ---------------------------------------------------------
def _kbit(mbps: float) -> str:
    return f"{max(8, int(mbps * 1000))}kbit"


def has_our_root(qdiscs: str) -> bool:
    """`tc qdisc show dev X` → is the root already `htb 1: ... default 0x30`?"""
    return any(re.match(r"qdisc htb 1: root .*\bdefault (0x)?30\b", line.strip())
               for line in qdiscs.splitlines())


def uplink_tc(seg: SegmentationSection, fresh: bool = True) -> List[Tuple[str, ...]]:
    """The tree's commands; with fresh=False the root qdisc is ours already, and HTB
    cannot `replace` itself in place, so only the classes are replaced."""
    if seg.uplink_mbps is None:
        return []
    dev, total = seg.uplink_interface, seg.uplink_mbps
    first = total * seg.priority_share
    root = [("tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default",
             "30")] if fresh else []
    return [
        *root,
        ("tc", "class", "replace", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
         "rate", _kbit(total), "ceil", _kbit(total)),
        ("tc", "class", "replace", "dev", dev, "parent", "1:1", "classid", "1:10", "htb",
         "rate", _kbit(first), "ceil", _kbit(total), "prio", "0"),
        ("tc", "class", "replace", "dev", dev, "parent", "1:1", "classid", "1:30", "htb",
         "rate", _kbit(total - first), "ceil", _kbit(total), "prio", "1"),
    ]


# A short FIFO where the kernel has no fq_codel: HTB's default leaf is a pfifo as long as
# the device's txqueuelen (1000 packets on a veth, 600 ms at 20 Mbit/s), in which a few
# hotspot flows hold the queue. 50 ms at the uplink's rate bounds that delay.
LEAF_FIFO_SECONDS = 0.05
_FULL_FRAME_BITS = 1514 * 8


def fifo_limit(mbps: float) -> int:
    return max(10, int(mbps * 1e6 * LEAF_FIFO_SECONDS / _FULL_FRAME_BITS))


def uplink_leaves(seg: SegmentationSection) -> List[List[Tuple[str, ...]]]:
    """A leaf qdisc under each class, as alternatives in order of preference: fq_codel
    (fairness inside a class), else a pfifo short enough to bound queueing delay. Each
    is optional: a kernel without either keeps HTB's default leaf, and the priority
    between classes still holds."""
    if seg.uplink_mbps is None:
        return []
    dev, limit = seg.uplink_interface, str(fifo_limit(seg.uplink_mbps))
    leaves = []
    for minor in ("10", "30"):
        head = ("tc", "qdisc", "replace", "dev", dev, "parent", f"1:{minor}", "handle",
                f"{minor}:")
        leaves.append([(*head, "fq_codel"), (*head, "pfifo", "limit", limit)])
    return leaves


_CLASS = re.compile(r"^class htb (?P<id>[0-9a-f]+:[0-9a-f]+) .*?\brate (?P<rate>\S+) "
                    r"ceil (?P<ceil>\S+)")
_UNITS = {"bit": 1, "kbit": 1000, "mbit": 1000 ** 2, "gbit": 1000 ** 3}


def _bits(text: str) -> int:
    match = re.fullmatch(r"([0-9.]+)([a-z]*)", text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise SegmentationError(f"tc printed a rate {text!r} this agent cannot read")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_tc_classes(listing: str) -> Dict[str, Tuple[int, int]]:
    """`tc class show dev X` → {classid: (rate, ceil) in bit/s} (iproute2 prints no JSON
    for classes in several versions, so the text is read)."""
    out = {}
    for line in listing.splitlines():
        match = _CLASS.match(line.strip())
        if match:
            out[match["id"]] = (_bits(match["rate"]), _bits(match["ceil"]))
    return out


def planned_classes(seg: SegmentationSection) -> Dict[str, Tuple[int, int]]:
    if seg.uplink_mbps is None:
        return {}
    total = int(seg.uplink_mbps * 1e6)
    first = int(seg.uplink_mbps * seg.priority_share * 1e6)
    return {"1:1": (total, total), "1:10": (first, total), "1:30": (total - first, total)}


# -- I/O ----------------------------------------------------------------------------
def run(args: Sequence[str], stdin: Optional[str] = None) -> str:
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SegmentationError(f"{args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise SegmentationError(f"{' '.join(args)[-160:]}: {done.stderr.strip()[:300]}")
    return done.stdout


def backend() -> str:
    if shutil.which("nft"):
        return "nft"
    if shutil.which("iptables-restore"):
        return "iptables"
    raise SegmentationError("neither nft nor iptables-restore is installed "
                            "(apt install nftables)")


def _ensure_jumps(runner: Runner, tool: str) -> None:
    for table, parent, chain in CHAINS.values():
        try:
            runner([tool, "-w", "-t", table, "-C", parent, "-j", chain], None)
        except SegmentationError:
            runner([tool, "-w", "-t", table, "-I", parent, "1", "-j", chain], None)


def apply(seg: SegmentationSection, which: Optional[str] = None, runner: Runner = run) -> None:
    """Apply the rules and the uplink tree, then verify; SegmentationError on any gap."""
    which = which or backend()
    if which == "nft":
        runner(["nft", "-f", "-"], render_nft(seg))
    else:
        for version, tool in ((4, "iptables"), (6, "ip6tables")):
            runner([f"{tool}-restore", "-w", "--noflush"], render_iptables(seg, version))
            _ensure_jumps(runner, tool)
    if seg.uplink_mbps is not None:
        ours = has_our_root(runner(["tc", "qdisc", "show", "dev", seg.uplink_interface], None))
        for cmd in uplink_tc(seg, fresh=not ours):
            runner(cmd, None)
    for choices in uplink_leaves(seg):
        apply_leaf(choices, runner)
    problems = verify(seg, which, runner)
    if problems:
        raise SegmentationError("applied, but: " + "; ".join(problems))


def apply_leaf(choices: Sequence[Tuple[str, ...]], runner: Runner) -> Optional[str]:
    """The first leaf qdisc the kernel takes; its kind, or None (the default leaf)."""
    failures = []
    for cmd in choices:
        try:
            runner(cmd, None)
            return cmd[cmd.index("handle") + 2]
        except SegmentationError as exc:
            failures.append(str(exc))
    log.warning("uplink leaf qdisc left as the kernel's default: %s", "; ".join(failures))
    return None


def verify(seg: SegmentationSection, which: Optional[str] = None,
           runner: Runner = run) -> List[str]:
    """What differs from the plan, in plain words; [] when everything is in place."""
    which = which or backend()
    want = expected_ids(seg)
    problems = []
    try:
        if which == "nft":
            have = parse_nft_ids(runner(["nft", "-j", "list", "table", "inet", TABLE], None))
        else:
            have = parse_iptables_ids(runner(["iptables-save"], None))
    except SegmentationError as exc:
        return [f"cannot read the rules back: {exc}"]
    for chain, ids in want.items():
        got = have.get(chain, [])
        if which != "nft":  # v6 rules live in ip6tables; iptables-save lists v4 only,
            # the filter and mangle parts of one chain in either order, a rule per network
            ids = sorted({i for i in ids if not i.endswith("6")})
            got = sorted(set(got))
        if got != ids:
            problems.append(f"{chain} rules are {got}, planned {ids}")
    if seg.uplink_mbps is not None:
        have_classes = parse_tc_classes(runner(["tc", "class", "show", "dev",
                                                seg.uplink_interface], None))
        for classid, (rate, ceil) in planned_classes(seg).items():
            got_rate, got_ceil = have_classes.get(classid, (0, 0))
            # tc rounds what it prints; a percent is far below any real mistake
            if abs(got_rate - rate) > rate / 100 or abs(got_ceil - ceil) > ceil / 100:
                problems.append(f"uplink {seg.uplink_interface} class {classid} is "
                                f"{got_rate}/{got_ceil} bit/s, planned {rate}/{ceil}")
    return problems


def remove(which: Optional[str] = None, runner: Runner = run) -> None:
    which = which or backend()
    if which == "nft":
        runner(["nft", "-f", "-"], f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n")
        return
    for tool in ("iptables", "ip6tables"):
        for table, parent, chain in CHAINS.values():
            for args in (["-D", parent, "-j", chain], ["-F", chain], ["-X", chain]):
                try:
                    runner([tool, "-w", "-t", table, *args], None)
                except SegmentationError:
                    pass
