"""`make demo`: broker from broker_config/, fleet API on SQLite, and 10 simulated boxes.

Prints the dashboard address and an admin token; Ctrl-C stops everything it started.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List

DEVICES = int(os.environ.get("SIMPUL_DEMO_DEVICES", "10"))


def port_or_free(preferred: int) -> int:
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="simpul-demo-", dir="/tmp"))
    base.chmod(0o755)
    broker_port = port_or_free(18830)
    fleet_mqtt_port = port_or_free(18831)
    api_port = port_or_free(8080)
    db = f"sqlite:///{base}/fleet.db"
    py = sys.executable
    children: List[subprocess.Popen] = []  # type: ignore[type-arg]

    def spawn(*args: str, log: str) -> subprocess.Popen:  # type: ignore[type-arg]
        out = open(base / log, "ab")
        child = subprocess.Popen([py, "-m", *args], stdout=out, stderr=subprocess.STDOUT)
        children.append(child)
        return child

    try:
        spawn("fleet_api.cli", "broker", "--port", str(broker_port), "--fleet-port",
              str(fleet_mqtt_port), "--data", str(base / "broker"), "--bind", "127.0.0.1",
              log="broker.log")
        token = subprocess.run([py, "-m", "fleet_api.cli", "token", "create", "--role", "admin",
                                "--db", db, "--name", "demo"], check=True, text=True,
                               capture_output=True).stdout.strip()
        time.sleep(0.5)
        spawn("fleet_api.cli", "serve", "--db", db, "--broker-data", str(base / "broker"),
              "--port", str(api_port), "--heartbeat-timeout", "30", log="fleet.log")
        url = f"http://127.0.0.1:{api_port}"
        wait_http(f"{url}/healthz")
        spawn("simulator.cli", "fleet", "--fleet", url, "--token", token, "--devices",
              str(DEVICES), "--interval", "5", "--prefix", "demo", "--data-dir",
              str(base / "boxes"), log="sim.log")
        print(f"""
Simpul demo is running ({DEVICES} simulated boxes).
  Dashboard:   {url}/login?token={token}
  Admin token: {token}
  API:         curl -H 'Authorization: Bearer {token}' {url}/api/v1/devices
  Broker:      mqtt://127.0.0.1:{broker_port} (devices), logs in {base}
Press Ctrl-C to stop.
""", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(1)
        failed = next(c for c in children if c.poll() is not None)
        print(f"simpul demo: a part stopped unexpectedly (pid {failed.pid}); "
              f"see the logs in {base}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"simpul demo: {exc}; logs in {base}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
