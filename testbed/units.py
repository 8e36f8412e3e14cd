"""Reading a systemd unit file in tests: its settings as systemd would list them."""

from pathlib import Path
from typing import Dict, List


def unit_settings(path: Path) -> Dict[str, List[str]]:
    """Key -> every value it is given, in order; comments and section headers dropped."""
    out: Dict[str, List[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out
