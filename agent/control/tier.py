"""The config twin's tier applier: one shaper shared with `simpul-agent tier apply`.

A tier counts as applied only when reading `tc` back matches the plan; otherwise the
twin's transaction fails and rolls back.
"""

from typing import Any, Callable, Dict, Optional

from agent.control.twin import TierApplier, TwinError


def shaper_applier(interface: str, netns: Optional[str] = None,
                   clients: Callable[[], list] = list) -> TierApplier:  # type: ignore[type-arg]
    from agent.shaper import Shaper, Tier

    shaper = Shaper(interface, netns=netns)

    def apply(tier: Optional[Dict[str, Any]]) -> Optional[Dict[str, float]]:
        if tier is None:
            shaper.remove()
            return None
        wanted = Tier(down_mbps=tier["down_mbps"], up_mbps=tier["up_mbps"],
                      per_client_mbps=tier.get("per_client_mbps"))
        result = shaper.apply(wanted, clients())
        if not result.verified:
            raise TwinError("tier read-back differs from the plan: " + "; ".join(result.problems))
        applied = {"down_mbps": result.down_mbps, "up_mbps": result.up_mbps}
        if result.per_client_mbps is not None:
            applied["per_client_mbps"] = result.per_client_mbps
        return applied

    return apply
