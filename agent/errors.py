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
    ├── UpdateError        an update that was refused or failed (agent.update): SignatureError
    ├── SegmentationError  the hotspot's firewall plan (agent/segmentation.py)
    └── SensorReadError    `simpul-agent sensor read` (agent/cli/sensor.py)

Plain ValueErrors remain only inside pydantic validators (pydantic turns them into a
ConfigError's message) and for programming mistakes.

The contract (simpul_wire.config, simpul_wire.bundle) raises simpul_wire.errors'
ConfigError and UpdateError. The agent's ConfigError and UpdateError subclass those as
well as AgentError, and the agent turns the contract's into its own where it calls it
(agent.config.load_config, agent.update.slots), so every error that reaches the CLI is
an AgentError and one `except` clause catches either side's.
"""

from simpul_wire import errors as wire


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError, wire.ConfigError):
    """Config that does not validate; the message names the line or field."""


class CollectorError(AgentError):
    """A source that cannot be read; its message is the `unavailable` reason."""


class OutboxError(AgentError):
    """The outbox database cannot be opened or written."""


class LinkError(AgentError):
    """A broker URL or credential file that cannot be used."""


class UpdateError(AgentError, wire.UpdateError):
    """An update that was refused or failed; the message says which step and why."""


class SignatureError(UpdateError, wire.SignatureError):
    """The bundle is not signed by a key this box trusts; nothing was installed."""
