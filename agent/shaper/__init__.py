"""Bandwidth tiers: HTB shaping of the hotspot interface, verified by reading tc back.

Only kernel features that both this CI machine and a Raspberry Pi kernel have are used:
HTB, the ingress qdisc, the u32 classifier, the mirred action and IFB devices (no cake,
fq_codel, flower or police).

- download (towards clients): HTB on the hotspot interface's egress;
- upload (from clients): the interface's ingress redirected (mirred) to an IFB device,
  `ifb-<interface>`, with the same HTB tree;
- per-client caps: one HTB class per client address, picked by u32 filters in a
  256-bucket hash table keyed on the address's last octet;
- a tier change on an already shaped interface is `tc class change` only, so running
  flows keep going.

Public API (what the config twin and `simpul-agent tier apply` call):

    from agent.shaper import Shaper, Tier

    shaper = Shaper("wlan0")                       # netns="..." for tests
    tier = Tier(down_mbps=100, up_mbps=100, per_client_mbps=20)
    result = shaper.apply(tier, clients=["10.42.0.17", "10.42.0.23"])
    result.verified        # True only when `tc` read-back matches the plan
    result.problems        # what differed, one plain sentence each
    shaper.verify(tier, clients)   # read-only re-check, same AppliedTier shape
    shaper.plan(tier, clients).render()   # the commands apply() would run (dry run)
    shaper.usage()         # {"down_bytes": N, "up_bytes": N} through the tier so far
    shaper.remove()        # take the shaping off

Errors (all `agent.errors.AgentError`, one plain line each): `NotPermitted` (no
CAP_NET_ADMIN), `NoSuchInterface`, `MissingFeature` (the kernel lacks IFB, HTB, u32,
ingress or mirred; the message names the CONFIG_ option), `ShaperError` otherwise.
apply() is idempotent: after a failure half-way, applying the last good tier repairs it.
"""

from agent.shaper.apply import AppliedTier, Shaper
from agent.shaper.errors import MissingFeature, NoSuchInterface, NotPermitted, ShaperError
from agent.shaper.plan import Plan, Tier

__all__ = [
    "AppliedTier",
    "MissingFeature",
    "NoSuchInterface",
    "NotPermitted",
    "Plan",
    "Shaper",
    "ShaperError",
    "Tier",
]
