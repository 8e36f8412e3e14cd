"""`simpul-field` subcommands, one module each (see firmware_bridge/cli.py)."""
