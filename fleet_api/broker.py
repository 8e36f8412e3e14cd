"""`simpul-fleet broker --port P --data DIR`: run Mosquitto with Simpul's broker_config/.

Prepares DIR (config rendered from the template, the ACL, the fleet account, a
password file that keeps existing device accounts) and then becomes Mosquitto, so the
pid in DIR/mosquitto.pid is the broker's own and SIGHUP reloads its accounts.
"""

import json
import os
import re
import shutil
import stat
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

from fleet_api.accounts import (
    BRIDGE_USER,
    FLEET_USER,
    acl_text,
    mosquitto_hash,
    new_password,
    service_lines,
    write_private,
)
from fleet_api.pki import FleetCA

CONFIG_DIR = Path(__file__).resolve().parent.parent / "broker_config"


class BrokerSetupError(Exception):
    """The data directory or Mosquitto itself cannot be used."""


def _check_reachable_by_broker(path: Path) -> None:
    """Mosquitto drops to the `mosquitto` user; every parent must let it through."""
    if os.getuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH and parent.stat().st_uid != _mosquitto_uid():
            raise BrokerSetupError(
                f"{parent} is not searchable by the mosquitto user (mode "
                f"{oct(mode & 0o777)}); choose a data dir under /tmp or /var/lib"
            )


def _mosquitto_uid() -> int:
    import pwd

    try:
        return pwd.getpwnam("mosquitto").pw_uid
    except KeyError:
        return -1


PROFILES = {"default": "mosquitto.conf.in", "city": "mosquitto.city.conf.in"}
CITY_MAX_CONNECTIONS = 16384


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (the hard one too when root) towards
    `wanted`; Mosquitto inherits it across exec. Returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
        return wanted
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


def _bridge_section(data: Path, address: str, name: str) -> str:
    """The district side of a bridge: broker_config/bridge.conf.in with the city's bridge
    password, which the operator copies from the city's DIR/bridge.password."""
    secret = data / "bridge.password"
    if not secret.exists():
        raise BrokerSetupError(f"{secret} is missing: copy bridge.password from the city "
                               "broker's data dir (started with --accept-bridges)")
    if not re.fullmatch(r"[a-z0-9-]{1,40}", name):
        raise BrokerSetupError("--bridge-name: 1-40 characters of a-z, 0-9 and '-'")
    return (CONFIG_DIR / "bridge.conf.in").read_text().format(
        name=name, address=address, password=secret.read_text().strip())


def prepare(data_dir: str, port: int, fleet_port: int, bind: str = "0.0.0.0",
            extra: str = "", profile: str = "default", accept_bridges: bool = False,
            bridge: Optional[Tuple[str, str]] = None, tls_port: Optional[int] = None,
            tls_names: Sequence[str] = ()) -> Path:
    """Create or refresh DIR; return the rendered config's path.

    accept_bridges: the city side; makes the `simpul-bridge` account (DIR/bridge.password)
    that district brokers log in with. bridge=(HOST:PORT, NAME): the district side.
    tls_port: also a TLS listener for devices with certificates from the fleet's CA
    (created in DIR/tls on first use; tls_names go into the broker's certificate)."""
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    _check_reachable_by_broker(data.parent)
    if os.getuid() == 0:
        os.chown(data, _mosquitto_uid(), -1)
        data.chmod(0o750)
    template = (CONFIG_DIR / PROFILES[profile]).read_text()
    if bridge is not None:
        extra = _bridge_section(data, *bridge) + extra
    if tls_port is not None:
        ca = FleetCA(str(data))
        ca.ensure(tls_names)
        extra += (CONFIG_DIR / "tls_listener.conf.in").read_text().format(
            tls_port=tls_port, bind=bind, tls=ca.dir)
    conf = template.format(data=data, port=port, fleet_port=fleet_port, bind=bind, extra=extra,
                           max_connections=CITY_MAX_CONNECTIONS)
    write_private(data / "mosquitto.conf", conf)  # a bridge's password may be in it
    write_private(data / "acl", acl_text(()))  # the fleet's sync adds revoked identities
    secret = data / "fleet.password"
    if not secret.exists():
        password = new_password()
        write_private(secret, password + "\n", for_broker=False)
        write_private(data / "fleet.hash", mosquitto_hash(password) + "\n", for_broker=False)
    if accept_bridges and not (data / "bridge.hash").exists():
        password = new_password()
        write_private(data / "bridge.password", password + "\n", for_broker=False)
        write_private(data / "bridge.hash", mosquitto_hash(password) + "\n", for_broker=False)
    service = service_lines(data)
    passwd = data / "passwd"
    if passwd.exists():
        lines = [ln for ln in passwd.read_text().splitlines()
                 if ln and not ln.startswith((f"{FLEET_USER}:", f"{BRIDGE_USER}:"))]
    else:
        lines = []
    write_private(passwd, "\n".join([*service, *lines]) + "\n")
    info = {"device_url": f"mqtt://127.0.0.1:{port}", "fleet_url": f"mqtt://127.0.0.1:{fleet_port}",
            "port": port, "fleet_port": fleet_port, "bind": bind, "profile": profile}
    if tls_port is not None:
        info.update(tls_url=f"mqtts://127.0.0.1:{tls_port}", tls_port=tls_port)
    (data / "broker.json").write_text(json.dumps(info, indent=2) + "\n")
    return data / "mosquitto.conf"


def exec_broker(data_dir: str, port: int, fleet_port: Optional[int] = None,
                bind: str = "0.0.0.0", profile: str = "default", accept_bridges: bool = False,
                bridge: Optional[Tuple[str, str]] = None, tls_port: Optional[int] = None,
                tls_names: Sequence[str] = ()) -> None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if mosquitto is None:
        raise BrokerSetupError("mosquitto is not installed: apt-get install mosquitto")
    conf = prepare(data_dir, port, fleet_port or port + 1, bind, profile=profile,
                   accept_bridges=accept_bridges, bridge=bridge, tls_port=tls_port,
                   tls_names=tls_names)
    if profile == "city":
        got = raise_nofile(CITY_MAX_CONNECTIONS + 1024)
        if got < CITY_MAX_CONNECTIONS + 64:
            print(f"simpul-fleet broker: open-file limit {got}: fewer connections than "
                  f"{CITY_MAX_CONNECTIONS} will fit (run as root or raise `ulimit -n`)",
                  file=sys.stderr)
    (conf.parent / "mosquitto.pid").write_text(f"{os.getpid()}\n")
    os.execv(mosquitto, [mosquitto, "-c", str(conf)])
