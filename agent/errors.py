"""The agent's exception tree: every error the agent raises on purpose is an AgentError,
so `simpul-agent` turns any of them into one plain line (agent/cli).

    AgentError
    ├── ConfigError        a config file or desired config that does not validate
    ├── CollectorError     a source that cannot be read right now (becomes `unavailable`)
    │   └── ClientsError   client counting (agent/clients/errors.py): ParseError, CaptureError
    ├── OutboxError        the durable outbox cannot be opened or written
    ├── LinkError          the broker URL or credentials are unusable
    ├── RouteTaken         a topic leaf or ack stream wired twice (agent/routing.py; also
    │                      a ValueError)
    ├── CommandError       a box command that failed (agent/control/builtin.py)
    ├── TwinError          a desired config that could not be applied (agent/control/twin.py)
    ├── ShaperError        the tc shaper (agent/shaper/errors.py): NotPermitted,
    │                      NoSuchInterface, MissingFeature
    ├── UpdateError        an update bundle or slot (agent/update/bundle.py): SignatureError
    ├── SegmentationError  the hotspot's firewall plan (agent/segmentation.py)
    └── SensorReadError    `simpul-agent sensor read` (agent/cli/sensor.py)

Plain ValueErrors remain only inside pydantic validators (pydantic turns them into a
ConfigError's message) and for programming mistakes.
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
