"""Mosquitto's config templates and the access plugin's C sources, shipped as package data.

A package (not a plain directory) so that the installed wheel carries these files and
`simpul-fleet broker` finds them beside this module, with no source checkout.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """A file or directory of broker_config, e.g. path("plugin") or path("bridge.conf.in")."""
    return HERE / name
