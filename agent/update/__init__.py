"""Agent updates with no site visit: signed bundles, A/B virtualenv slots, health
check, trial and rollback. See docs/updates.md."""
