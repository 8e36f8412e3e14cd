"""The agent's exception tree.

    AgentError
    ├── ConfigError        a config file or desired config that does not validate
    ├── CollectorError     a source that cannot be read right now (becomes `unavailable`)
    ├── OutboxError        the durable outbox cannot be opened or written
    └── LinkError          the broker URL or credentials are unusable
"""


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """Config that does not validate; the message names the line or field."""


class CollectorError(AgentError):
    """A source that cannot be read; its message is the `unavailable` reason."""


class OutboxError(AgentError):
    """The outbox database cannot be opened or written."""


class LinkError(AgentError):
    """A broker URL or credential file that cannot be used."""
