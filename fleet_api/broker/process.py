"""`simpul-fleet broker --port P --data DIR`: run Mosquitto with Simpul's broker_config/.

Prepares DIR (config rendered from the template, the ACL, the fleet account, a
password file that keeps existing device accounts) and then becomes Mosquitto, so the
pid in DIR/mosquitto.pid is the broker's own and SIGHUP reloads its accounts.
"""

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import broker_config
from fleet_api.broker import plugin as broker_plugin
from fleet_api.broker.accounts import (
    FLEET_USER,
    LEGACY_USERS,
    AccessData,
    access_text,
    bridge_user,
    mosquitto_hash,
    new_password,
    passwd_text,
    service_lines,
    valid_bridge_name,
    write_private,
)
from fleet_api.devices.pki import FleetCA
from fleet_api.errors import FleetError

CONFIG_DIR = broker_config.HERE


class BrokerSetupError(FleetError):
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
    """The district side of a bridge: broker_config/bridge.conf.in with the password the
    city's admin got once when creating this bridge (POST /api/v1/bridges)."""
    secret = data / "bridge.password"
    if not valid_bridge_name(name):
        raise BrokerSetupError("--bridge-name: 2-40 characters of a-z, 0-9 and '-', the name "
                               "the bridge was created with at the city")
    if not secret.exists():
        raise BrokerSetupError(f"{secret} is missing: write there the password the city's "
                               f"admin got from POST /api/v1/bridges for {name!r}")
    return (CONFIG_DIR / "bridge.conf.in").read_text().format(
        name=name, address=address, username=bridge_user(name),
        password=secret.read_text().strip())


def prepare(data_dir: str, port: int, fleet_port: int, bind: str = "0.0.0.0",
            extra: str = "", profile: str = "default",
            bridge: Optional[Tuple[str, str]] = None, tls_port: Optional[int] = None,
            tls_names: Sequence[str] = ()) -> Path:
    """Create or refresh DIR; return the rendered config's path.

    bridge=(HOST:PORT, NAME): the district side of a bridge the city's admin created.
    tls_port: also a TLS listener for devices with certificates from the fleet's CA
    (created in DIR/tls on first use; tls_names go into the broker's certificate)."""
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    _check_reachable_by_broker(data.parent)
    if os.getuid() == 0:
        os.chown(data, _mosquitto_uid(), -1)
        data.chmod(0o750)
    try:
        plugin = broker_plugin.install(data)
    except broker_plugin.PluginBuildError as exc:
        raise BrokerSetupError(str(exc)) from exc
    template = (CONFIG_DIR / PROFILES[profile]).read_text()
    if bridge is not None:
        extra = _bridge_section(data, *bridge) + extra
    if tls_port is not None:
        ca = FleetCA(str(data))
        ca.ensure(tls_names)
        extra += (CONFIG_DIR / "tls_listener.conf.in").read_text().format(
            tls_port=tls_port, bind=bind, tls=ca.dir,
            device_plugin=broker_plugin.listener_lines(plugin, data, "device"))
    conf = template.format(data=data, port=port, fleet_port=fleet_port, bind=bind, extra=extra,
                           max_connections=CITY_MAX_CONNECTIONS,
                           device_plugin=broker_plugin.listener_lines(plugin, data, "device"),
                           fleet_plugin=broker_plugin.listener_lines(plugin, data, "fleet"))
    write_private(data / "mosquitto.conf", conf)  # a bridge's password may be in it
    # Before the plugin, an acl_file; and before admin-made bridges, one shared account.
    for stale in ("acl", "bridge.hash"):
        (data / stale).unlink(missing_ok=True)
    access = data / broker_plugin.ACCESS_FILE
    if not access.exists():  # the fleet's account sync writes the real one
        write_private(access, access_text(AccessData()))
    secret = data / "fleet.password"
    if not secret.exists():
        password = new_password()
        write_private(secret, password + "\n", for_broker=False)
        write_private(data / "fleet.hash", mosquitto_hash(password) + "\n", for_broker=False)
    # Keep the device and bridge lines of an existing password file (the fleet's sync
    # rewrites it from the database anyway); the fleet's own line is written anew, the
    # legacy names go, and passwd_text drops (and logs) anything else that is not ours.
    passwd = data / "passwd"
    kept = []
    if passwd.exists():
        for line in passwd.read_text().splitlines():
            user, _, pw_hash = line.partition(":")
            if user not in (FLEET_USER, *LEGACY_USERS):
                kept.append((user, pw_hash))
    write_private(passwd, passwd_text(service_lines(data), kept))
    info = {"device_url": f"mqtt://127.0.0.1:{port}", "fleet_url": f"mqtt://127.0.0.1:{fleet_port}",
            "port": port, "fleet_port": fleet_port, "bind": bind, "profile": profile}
    if tls_port is not None:
        info.update(tls_url=f"mqtts://127.0.0.1:{tls_port}", tls_port=tls_port)
    (data / "broker.json").write_text(json.dumps(info, indent=2) + "\n")
    return data / "mosquitto.conf"


def exec_broker(data_dir: str, port: int, fleet_port: Optional[int] = None,
                bind: str = "0.0.0.0", profile: str = "default",
                bridge: Optional[Tuple[str, str]] = None, tls_port: Optional[int] = None,
                tls_names: Sequence[str] = ()) -> None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if mosquitto is None:
        raise BrokerSetupError("mosquitto is not installed: apt-get install mosquitto")
    conf = prepare(data_dir, port, fleet_port or port + 1, bind, profile=profile,
                   bridge=bridge, tls_port=tls_port,
                   tls_names=tls_names)
    if profile == "city":
        got = raise_nofile(CITY_MAX_CONNECTIONS + 1024)
        if got < CITY_MAX_CONNECTIONS + 64:
            print(f"simpul-fleet broker: open-file limit {got}: fewer connections than "
                  f"{CITY_MAX_CONNECTIONS} will fit (run as root or raise `ulimit -n`)",
                  file=sys.stderr)
    (conf.parent / "mosquitto.pid").write_text(f"{os.getpid()}\n")
    os.execv(mosquitto, [mosquitto, "-c", str(conf)])
