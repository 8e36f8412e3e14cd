"""Text and dicts into config models, with errors a technician can act on.

`parse_config` takes the box's TOML text (reading the file is the agent's
load_config), `parse_managed` the fleet's desired config. Both raise
simpul_wire.errors.ConfigError naming the field, and the line when the text is known.
"""

import re
import sys
from typing import Any, Dict, Optional

from pydantic import ValidationError

from simpul_wire.config.sections import AgentConfig, ManagedConfig
from simpul_wire.errors import ConfigError


def _line_of(text: str, key: str) -> Optional[int]:
    at_start = re.compile(rf"^\s*(\[+\s*)?{re.escape(key)}\b")
    anywhere = re.compile(rf"\b{re.escape(key)}\s*=")
    lines = text.splitlines()
    for pattern in (at_start, anywhere):
        for number, line in enumerate(lines, start=1):
            if pattern.search(line):
                return number
    return None


def explain(exc: ValidationError, text: str = "") -> str:
    """One line per error, naming the field, and the line when the text is known."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "config"
        keys = [p for p in err["loc"] if isinstance(p, str)]
        where = ""
        if text and keys:
            number = _line_of(text, keys[-1])
            if number:
                where = f"line {number}: "
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {keys[-1]!r} (typo?)" if keys else "unknown key"
        else:
            msg = err["msg"]
        lines.append(f"{where}{path}: {msg}")
    return "; ".join(lines)


def parse_config(text: str, source: str = "config") -> AgentConfig:
    """Parse TOML text into AgentConfig; ConfigError names the line and field."""
    # Imported here: the fleet validates desired config (parse_managed) without TOML.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.9 boxes
        import tomli as tomllib

    try:
        raw: Dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {explain(exc, text)}") from exc


def parse_managed(raw: Dict[str, Any]) -> ManagedConfig:
    """Validate desired config from the fleet; ConfigError names the field."""
    try:
        return ManagedConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"desired config: {explain(exc)}") from exc
