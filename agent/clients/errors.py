"""The client counter's exceptions, under the agent's tree.

AgentError
└── CollectorError
    └── ClientsError          a client source cannot be read
        ├── ParseError        state-tool text that is not in the expected format
        └── CaptureError      a capture file or live interface that cannot be read
            └── CaptureTruncated  a capture file that ends inside a record (power lost?)
"""

from agent.errors import CollectorError


class ClientsError(CollectorError):
    """A client source cannot be read; the message is its `unavailable` reason."""


class ParseError(ClientsError):
    """Output of hostapd, iw, dnsmasq or ip that does not look like theirs."""


class CaptureError(ClientsError):
    """A capture file that is corrupt or cut short, or an interface that cannot be read."""


class CaptureTruncated(CaptureError):
    """A capture file that ends inside a record: everything before `byte` is whole.

    `byte` is where the incomplete record starts, `frames` how many frames came before it.
    Readers that can use a partial file (the CLI) count up to the cut; others refuse it.
    """

    def __init__(self, message: str, byte: int, frames: int) -> None:
        super().__init__(message)
        self.byte = byte
        self.frames = frames
