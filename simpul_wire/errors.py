"""The contract's exception tree: what the contract itself refuses.

    WireError              a payload that does not fit the contract (`field` names it)
    ├── ConfigError        a config file or desired config that does not validate
    └── UpdateError        an update bundle that is malformed or does not match its manifest
        └── SignatureError the bundle is not signed by a trusted key; nothing was used

Both sides catch these where they call the contract. The agent's own ConfigError and
UpdateError (agent.errors) subclass them and AgentError, so the box keeps one error base.
"""


class WireError(ValueError):
    """A payload that does not fit the contract; `field` names the first failing field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ConfigError(WireError):
    """Config that does not validate; the message names the line or field."""


class UpdateError(WireError):
    """An update that was refused or failed; the message says which step and why."""


class SignatureError(UpdateError):
    """The bundle is not signed by a key this box trusts; nothing was installed."""
