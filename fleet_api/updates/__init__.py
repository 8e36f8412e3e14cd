"""Agent updates: bundles (`simpul-fleet update ...` and the pure wave decisions) and the
staged update rollout the worker drives."""
