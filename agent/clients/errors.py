"""The client counter's exceptions, under the agent's tree.

AgentError
└── CollectorError
    └── ClientsError          a client source cannot be read
        ├── ParseError        state-tool text that is not in the expected format
        └── CaptureError      a capture file or live interface that cannot be read
"""

from agent.errors import CollectorError


class ClientsError(CollectorError):
    """A client source cannot be read; the message is its `unavailable` reason."""


class ParseError(ClientsError):
    """Output of hostapd, iw, dnsmasq or ip that does not look like theirs."""


class CaptureError(ClientsError):
    """A capture file that is corrupt or cut short, or an interface that cannot be read."""
