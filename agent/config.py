"""Loading the box's config file. Its schema is the contract's (simpul_wire.config):
the field tool writes the file, the fleet validates desired config with the same models.
"""

from pathlib import Path

from agent.errors import ConfigError
from simpul_wire import errors as wire
from simpul_wire.config import AgentConfig, parse_config


def load_config(path: str) -> AgentConfig:
    """The file at `path`, validated; the agent's ConfigError names the line and field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    try:
        return parse_config(text, path)
    except wire.ConfigError as exc:
        raise ConfigError(str(exc)) from exc
