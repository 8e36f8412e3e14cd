"""The agent's one narrow way to reboot the box: ask root through a file.

The agent runs unprivileged (CAP_NET_ADMIN and CAP_NET_RAW only), so it cannot reboot.
`request_reboot` writes the reason to /run/simpul/reboot-request; the root-owned
simpul-reboot.path unit sees the file and starts simpul-reboot.service, which logs the
reason to journald, refuses within 10 minutes of boot, and runs `systemctl reboot`.
See agent/systemd/ and docs/agent-health.md.
"""

import os
import tempfile
from pathlib import Path

from agent.errors import AgentError

REBOOT_REQUEST = Path("/run/simpul/reboot-request")


def request_reboot(reason: str, path: Path = REBOOT_REQUEST) -> Path:
    """Write the request atomically (so the path unit never sees half a reason)."""
    text = " ".join(reason.split())[:200] or "no reason given"
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reboot-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise AgentError(
            f"cannot request a reboot: {path.parent} is not writable ({exc.strerror}); "
            "is simpul-reboot.path installed and the agent run by its systemd unit?"
        ) from exc
    return path
