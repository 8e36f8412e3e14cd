"""The agent's config checks, the one place simpul_field reaches for them.

The card must hold an agent.toml the box will load, so provisioning validates it with the
contract's parser (simpul_wire.config), the one the agent loads it with. Imported only
by the provision verb, lazily, so `--help` never loads it.
"""

from typing import Any, Dict

from simpul_field.provision.errors import InputError
from simpul_wire.config import parse_config, parse_managed
from simpul_wire.errors import ConfigError


def managed_sections(table: Dict[str, Any], source: str) -> Any:
    """The managed sections ([[collectors]], [publish], ...) of `table`, validated."""
    try:
        return parse_managed(table)
    except ConfigError as exc:
        raise InputError(f"{source}: {exc}") from exc


def check_agent_config(text: str) -> None:
    """Refuse an agent.toml text that the box's agent would not load."""
    try:
        parse_config(text, "agent.toml")
    except ConfigError as exc:
        raise InputError(f"the agent config would not load: {exc}") from exc
