"""Real components: a Mosquitto from broker_config/, a fleet process, agents.

Every test gets its own ports and directories, so two runs never collide. Directories
live under a 0755 temp dir because Mosquitto drops to the `mosquitto` user.
"""

import atexit
import json
import os
import shutil
import signal as signals
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from testbed.ports import free_port

if TYPE_CHECKING:
    import httpx


ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_until(cond: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 10.0) -> None:
    wait_until(lambda: port_open(port), timeout, what=f"port {port}")


def scratch_dir(prefix: str = "simpul-test-") -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)  # Mosquitto runs as its own user and must reach its data dir
    return path


def scratch(prefix: str) -> Path:
    """A scratch dir removed at exit (unless SIMPUL_KEEP is set), for benchmarks."""
    path = scratch_dir(prefix)
    if not os.environ.get("SIMPUL_KEEP"):
        atexit.register(shutil.rmtree, path, True)
    return path


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


class Process:
    """A child process whose output goes to a log file we can read in assertions."""

    def __init__(self, args: List[str], log: Path, env: Optional[Dict[str, str]] = None
                 ) -> None:
        self.args = args
        self.log = log
        self.env = env
        self.proc: Optional[subprocess.Popen] = None  # type: ignore[type-arg]
        self.pid = 0  # kept after stop(), to tell this process from a successor

    def start(self) -> "Process":
        self._out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=ROOT, start_new_session=True)
        self.pid = self.proc.pid
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, sig: int = signals.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
        self.proc = None

    def kill(self) -> None:
        self.stop(signals.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Broker:
    """`simpul-fleet broker` on free ports, with its own data dir."""

    def __init__(self, base: Path, tls: bool = False) -> None:
        self.data = base / "broker"
        self.port = free_port()
        self.fleet_port = free_port()
        self.tls_port = free_port() if tls else None
        args = [tool("simpul-fleet"), "broker", "--port", str(self.port),
                "--fleet-port", str(self.fleet_port), "--data", str(self.data),
                "--bind", "127.0.0.1"]
        if self.tls_port:
            args += ["--tls-port", str(self.tls_port)]
        self.process = Process(args, base / "broker.log")

    def start(self) -> "Broker":
        self.process.start()
        wait_port(self.port)
        wait_port(self.fleet_port)
        if self.tls_port:
            wait_port(self.tls_port)
        return self

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    @property
    def fleet_password(self) -> str:
        return (self.data / "fleet.password").read_text().strip()

    @property
    def device_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class Fleet:
    """`simpul-fleet serve` against a broker, with an admin token."""

    def __init__(self, base: Path, broker: Broker, db_url: Optional[str] = None,
                 heartbeat_timeout: float = 3.0) -> None:
        self.base = base
        self.broker = broker
        self.db_url = db_url or f"sqlite:///{base}/fleet.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([tool("simpul-fleet"), "serve", "--db", self.db_url,
                                "--broker-data", str(broker.data), "--port", str(self.port),
                                "--heartbeat-timeout", str(heartbeat_timeout)],
                               base / "fleet.log")
        self.token = ""

    def create_token(self, role: str) -> str:
        out = subprocess.run([tool("simpul-fleet"), "token", "create", "--role", role,
                              "--db", self.db_url], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def start(self) -> "Fleet":
        self.token = self.create_token("admin")
        self.process.start()
        wait_until(self._healthy, 30, what="fleet /healthz")
        return self

    def _healthy(self) -> bool:
        import httpx  # imported here: the bullseye python3.9 run has no fleet side

        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, token: Optional[str] = None) -> "httpx.Client":
        import httpx

        return httpx.Client(base_url=self.url, timeout=15,
                            headers={"Authorization": f"Bearer {token or self.token}"})

    def register(self, device_id: str, **extra: Any) -> Dict[str, Any]:
        body = {"device_id": device_id, "site": f"Site {device_id}", "kind": "sensor",
                "district": "Kota Barat", "lat": -6.2, "lon": 106.8, **extra}
        with self.api() as api:
            resp = api.post("/api/v1/devices", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.process.stop()


def write_agent_config(base: Path, device_id: str, mqtt: Dict[str, Any],
                       collectors: str = "", publish: str = "") -> Path:
    """An agent config and password file for a registered device; returns the config path."""
    box = base / device_id
    box.mkdir(parents=True, exist_ok=True)
    secret = box / "mqtt.password"
    secret.write_text(mqtt["password"] + "\n")
    secret.chmod(0o600)
    config = box / "agent.toml"
    config.write_text(
        f'[device]\ndevice_id = "{device_id}"\ndata_dir = "{box / "data"}"\n\n'
        f'[broker]\nurl = "{mqtt["url"]}"\npassword_file = "{secret}"\nkeepalive_s = 5\n\n'
        f"[publish]\n{publish or 'sample_interval_s = 0.5' + chr(10) + 'health_interval_s = 2'}"
        f"\n\n[outbox]\nresend_after_s = 3\n\n{collectors}\n"
    )
    return config


def agent_process(base: Path, config: Path, name: str,
                  extra_env: Optional[Dict[str, str]] = None) -> Process:
    env = dict(os.environ, **(extra_env or {}))
    return Process([tool("simpul-agent"), "run", "--config", str(config)],
                   base / f"{name}.log", env=env)


def telemetry(fleet: Fleet, device_id: str, stream: str = "telemetry",
              limit: int = 10000, by: str = "ts") -> List[Dict[str, Any]]:
    with fleet.api() as api:
        resp = api.get(f"/api/v1/devices/{device_id}/telemetry",
                       params={"stream": stream, "limit": limit, "by": by})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]  # type: ignore[no-any-return]


def device(fleet: Fleet, device_id: str) -> Dict[str, Any]:
    with fleet.api() as api:
        resp = api.get(f"/api/v1/devices/{device_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
