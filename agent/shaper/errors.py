"""The shaper's exceptions, and the mapping of tc's own error text to plain causes.

    AgentError
    └── ShaperError          a tier that cannot be planned, applied or verified
        ├── NotPermitted     no CAP_NET_ADMIN (or not root)
        ├── NoSuchInterface  the hotspot interface does not exist
        └── MissingFeature   the kernel lacks IFB, HTB, u32, ingress or mirred
"""

from typing import Optional, Sequence

from agent.errors import AgentError


class ShaperError(AgentError):
    """A tier that cannot be planned, applied or verified; the message says why."""


class NotPermitted(ShaperError):
    pass


class NoSuchInterface(ShaperError):
    pass


class MissingFeature(ShaperError):
    pass


def feature_of(cmd: Sequence[str]) -> str:
    """The kernel feature a failing command needs, in the words a technician searches."""
    words = set(cmd)
    if "ifb" in words:
        return "IFB devices (CONFIG_IFB / module ifb)"
    if "ingress" in words:
        return "the ingress qdisc (CONFIG_NET_SCH_INGRESS)"
    if "mirred" in words:
        return "the mirred action (CONFIG_NET_ACT_MIRRED)"
    if "u32" in words:
        return "the u32 classifier (CONFIG_NET_CLS_U32)"
    if "htb" in words:
        return "the HTB qdisc (CONFIG_NET_SCH_HTB / module sch_htb)"
    return "a tc feature"


def classify(cmd: Sequence[str], stderr: str, device: Optional[str] = None) -> ShaperError:
    """Turn a failed tc/ip command and its stderr into one plain ShaperError."""
    text = " ".join(stderr.split())
    low = text.lower()
    shown = " ".join(cmd)
    if "operation not permitted" in low or "permission denied" in low:
        return NotPermitted(
            "not permitted to change traffic control: run as root or give the agent "
            f"CAP_NET_ADMIN ({shown}: {text})"
        )
    if "cannot find device" in low or "no such device" in low:
        return NoSuchInterface(f"interface {device or '?'} does not exist ({shown}: {text})")
    unknown = (
        "unknown device type" in low
        or "kind is unknown" in low
        or "classifier not found" in low
        or "unknown qdisc" in low
        or "unknown filter" in low
        or "failed to load tc action" in low
        or ("action" in low and "unknown" in low)
        or "failed to find specified qdisc" in low
    )
    if unknown:
        return MissingFeature(f"this kernel lacks {feature_of(cmd)} ({shown}: {text})")
    return ShaperError(f"{shown} failed: {text or 'no message'}")
