"""Subcommands of `simpul-sim`, one module each, registered explicitly in simulator.cli."""
