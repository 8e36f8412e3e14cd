"""The fleet's pieces as real processes, for benchmarks and the city tests: a PostgreSQL
database of our own on the running server, Mosquitto from broker_config/, `simpul-fleet
serve` and `ingest`, `simpul-sim fleet`; and the loss check by seq numbers."""

import functools
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

from testbed.harness import ROOT, Process, port_open, wait_until
from testbed.ports import free_port

REPO = ROOT
PG_ADMIN = os.environ.get("SIMPUL_PG", "postgresql://postgres@127.0.0.1:5432")


def env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


class Proc(Process):
    """`python -m MODULE ARGS...` from the checkout, started at once."""

    def __init__(self, args: List[str], log: Path) -> None:
        super().__init__([sys.executable, "-m", *args], log, env=env())
        self.start()

    @property
    def p(self) -> "subprocess.Popen[bytes]":
        assert self.proc is not None, "stopped"
        return self.proc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        super().stop(sig, timeout)


class PgDatabase:
    """CREATE DATABASE on the running server; DROP it in close()."""

    def __init__(self, prefix: str = "simpul_city") -> None:
        import psycopg

        self.name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = f"{PG_ADMIN}/{self.name}"

    def close(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Stack:
    """Broker + N `serve` + M extra `ingest` workers on one database."""

    def __init__(self, base: Path, db_url: str, profile: str = "default",
                 broker_args: Optional[List[str]] = None,
                 serve_args: Optional[List[str]] = None) -> None:
        self.base = base
        self.db_url = db_url
        self.port, self.fleet_port = free_port(), free_port()
        self.profile = profile
        self.broker_args = broker_args or []
        self.serve_args = serve_args or []
        self.broker: Optional[Proc] = None
        self.serves: List[Proc] = []
        self.ingests: List[Proc] = []
        self.api_ports: List[int] = []
        self.token = ""

    @property
    def broker_data(self) -> Path:
        return self.base / "broker"

    def start_broker(self) -> None:
        self.broker = Proc(["fleet_api.cli", "broker", "--port", str(self.port), "--fleet-port",
                            str(self.fleet_port), "--data", str(self.broker_data), "--bind",
                            "127.0.0.1", "--profile", self.profile, *self.broker_args],
                           self.base / "broker.log")
        self._wait_broker()

    def start_mosquitto(self, profile: str = "city", extra: str = "") -> subprocess.Popen:  # type: ignore[type-arg]
        """Mosquitto itself on a data dir `simpul-fleet broker` would prepare, so the caller
        holds its process (pid, CPU) and can add config lines (a log level)."""
        from fleet_api.broker.process import prepare

        conf = prepare(str(self.broker_data), self.port, self.fleet_port, "127.0.0.1",
                       profile=profile, extra=extra)
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        (self.broker_data / "mosquitto.pid").write_text(f"{broker.pid}\n")
        self._wait_broker()
        return broker

    def _wait_broker(self) -> None:
        wait_until(lambda: port_open(self.port) and port_open(self.fleet_port), 20,
                   what="the broker")

    def plugin_reloads(self) -> int:
        """How often the access plugin has loaded its files (its start included)."""
        log = self.broker_data / "mosquitto.log"
        return log.read_text().count("simpul_acl: loaded") if log.exists() else 0

    def create_token(self, role: str = "admin") -> str:
        out = subprocess.run([sys.executable, "-m", "fleet_api.cli", "token", "create", "--role",
                              role, "--db", self.db_url], capture_output=True, text=True,
                             env=env(), cwd=REPO, check=True)
        return out.stdout.strip()

    def start_serve(self, n: int = 1, heartbeat_timeout: float = 120) -> None:
        if not self.token:
            self.token = self.create_token()
        for i in range(n):
            port = free_port()
            k = len(self.serves) + 1
            self.serves.append(Proc(
                ["fleet_api.cli", "serve", "--db", self.db_url, "--broker-data",
                 str(self.broker_data), "--port", str(port), "--heartbeat-timeout",
                 str(heartbeat_timeout), *self._ingest_id(k), *self.serve_args],
                self.base / f"serve-{k}.log"))
            self.api_ports.append(port)
            wait_until(functools.partial(self._healthy, port), 60, what=f"serve {i + 1}")

    def _ingest_id(self, k: int) -> List[str]:
        """serve's own ingest client id, unless it runs with --no-ingest (which refuses one)."""
        if "--no-ingest" in self.serve_args:
            return []
        return ["--ingest-client-id", f"simpul_ingest_serve_{k}"]

    def start_ingest(self, n: int = 1) -> None:
        for _ in range(n):
            self.ingests.append(self._ingest(len(self.ingests) + 1))

    def _ingest(self, k: int) -> Proc:
        return Proc(["fleet_api.cli", "ingest", "--db", self.db_url, "--broker-data",
                     str(self.broker_data), "--client-id", f"simpul_ingest_extra_{k}"],
                    self.base / f"ingest-{k}.log")

    def restart_ingest(self, i: int) -> None:
        """Start worker i again with its fixed client id (its persistent session)."""
        self.ingests[i] = self._ingest(i + 1)

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def url(self, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.api_ports[i]}"

    def sim(self, devices: int, interval: float, duration: float, drain: float,
            report: Path, extra: Optional[List[str]] = None, api: int = 0) -> Proc:
        return Proc(["simulator.cli", "fleet", "--fleet", self.url(api), "--token", self.token,
                     "--devices", str(devices), "--interval", str(interval), "--duration",
                     str(duration), "--drain", str(drain), "--report", str(report),
                     "--broker-data", str(self.broker_data), *(extra or [])],
                    self.base / "sim.log")

    def stop(self) -> None:
        for p in [*self.ingests, *self.serves]:
            p.stop()
        if self.broker is not None:
            self.broker.stop()
        # A scenario's broker_restart starts a broker of its own (DIR/mosquitto.pid).
        try:
            pid = int((self.broker_data / "mosquitto.pid").read_text())
            if self.broker is None or pid != self.broker.pid:
                os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass


def seq_check(db_url: str, report: Dict[str, Any]) -> Dict[str, int]:
    """Every (device, stream, epoch) the boxes numbered must be in the database once:
    seqs 0..next_seq-1, each one row. Returns expected, stored, missing, duplicates."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    rows = {}
    with engine.connect() as conn:
        for r in conn.execute(text(
                "SELECT device_id, stream, epoch, COUNT(*), COUNT(DISTINCT seq), MIN(seq), "
                "MAX(seq) FROM records GROUP BY device_id, stream, epoch")):
            rows[(r[0], r[1], r[2])] = (int(r[3]), int(r[4]), int(r[5]), int(r[6]))
    engine.dispose()
    out = {"expected": 0, "stored": 0, "missing": 0, "duplicates": 0, "unexpected": 0}
    for device_id, box in report["boxes"].items():
        for stream, next_seq in box["next_seq"].items():
            count, distinct, lo, hi = rows.get((device_id, stream, box["epoch"]), (0, 0, 0, -1))
            out["expected"] += next_seq
            out["stored"] += distinct
            out["duplicates"] += count - distinct
            out["missing"] += next_seq - distinct
            if distinct and (lo < 0 or hi >= next_seq):
                out["unexpected"] += 1
    return out


def load_report(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]
