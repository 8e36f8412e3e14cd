"""A private PostgreSQL cluster for one test: initdb in the test's directory, owned by the
postgres user, on a free port with its socket in its own directory. Never the machine's
shared cluster."""

import glob
import shutil
import subprocess
from pathlib import Path
from typing import List

from testbed.harness import free_port


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise AssertionError(f"PostgreSQL's {name} not found under /usr/lib/postgresql")
    return found[-1]


class Cluster:
    def __init__(self, base: Path) -> None:
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: List[str], check: bool = True) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True,
                              text=True, check=check, timeout=120)

    def init(self) -> "Cluster":
        self.dir.mkdir()
        shutil.chown(self.dir, "postgres", "postgres")
        self._run([pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "--no-sync"])
        return self

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                f"-c fsync=off -c max_connections=50")
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
                   "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
                  check=False)

    def crash(self) -> None:
        """`immediate`: every backend killed at once, recovery from the WAL at next start."""
        self.stop("immediate")
