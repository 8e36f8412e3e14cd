"""What every config model shares: unknown keys are refused, and the shape of a name."""

from pydantic import BaseModel, ConfigDict

# A collector's, metric's or stream's name: safe in a metric key and a TOML table.
NAME = r"^[a-z][a-z0-9_]{0,31}$"


class Strict(BaseModel):
    """A model whose unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")
