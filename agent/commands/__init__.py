"""Subcommands of `simpul-agent`, one module each, registered explicitly in agent.cli."""
