import socket
import textwrap

import pytest

from simpul_wire.config import parse_config


def sample_config(module):
    """The TOML block after 'Sample config:' in a collector module's docstring."""
    doc = module.__doc__
    block = doc.split("Sample config:", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def parse_sample(module):
    text = '[device]\ndevice_id = "box-test-01"\n\n' + sample_config(module)
    config = parse_config(text, "sample")
    assert len(config.collectors) == 1
    return config.collectors[0]


@pytest.fixture
def full_backlog():
    """A listening port whose accept queue is full: further SYNs are dropped (timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    yield port
    filler.close()
    server.close()


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # bound then closed: nothing listens, the kernel answers RST
    return port
