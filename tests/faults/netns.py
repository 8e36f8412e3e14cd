"""A network namespace for one box, joined to the host by a veth pair.

Names and the /30 subnet come from the test's pid, so parallel runs never collide; the
namespace and the pair are removed on exit whatever happened.
"""

import os
import subprocess
from types import TracebackType
from typing import List, Optional, Type


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class BoxNet:
    def __init__(self, tag: str = "") -> None:
        pid = os.getpid()
        self.ns = f"simpul-{tag}{pid}"
        self.host_if = f"vh{tag}{pid}"[:15]
        self.box_if = f"vb{tag}{pid}"[:15]
        third, fourth = (pid >> 6) & 0xFF, (pid & 0x3F) << 2
        self.host_ip = f"10.213.{third}.{fourth + 1}"
        self.box_ip = f"10.213.{third}.{fourth + 2}"

    def __enter__(self) -> "BoxNet":
        self.close()  # leftovers of a crashed run with the same pid
        try:
            ip("netns", "add", self.ns)
            ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.box_if)
            ip("link", "set", self.box_if, "netns", self.ns)
            ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            ip("link", "set", self.host_if, "up")
            self.exec_ip("addr", "add", f"{self.box_ip}/30", "dev", self.box_if)
            self.exec_ip("link", "set", self.box_if, "up")
            self.exec_ip("link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            self.close()
            raise AssertionError(f"cannot build the box network: {exc.stderr}") from exc
        return self

    def exec_ip(self, *args: str) -> None:
        ip("netns", "exec", self.ns, "ip", *args)

    def prefix(self) -> List[str]:
        """argv prefix that runs a command inside the box's namespace."""
        return ["ip", "netns", "exec", self.ns]

    def down(self) -> None:
        ip("link", "set", self.host_if, "down")

    def up(self) -> None:
        ip("link", "set", self.host_if, "up")

    def close(self) -> None:
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.ns, check=False)

    def __exit__(self, _t: Optional[Type[BaseException]], _e: Optional[BaseException],
                 _tb: Optional[TracebackType]) -> None:
        self.close()
