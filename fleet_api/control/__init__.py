"""What the fleet tells a box: its twin (desired config), group templates and their staged
config rollouts, and box commands (not the CLI's verbs: those are fleet_api.cli)."""
