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
from typing import Optional

from fleet_api.accounts import FLEET_USER, mosquitto_hash, new_password, write_private

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
CITY_MAX_CONNECTIONS = 20000


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


def prepare(data_dir: str, port: int, fleet_port: int, bind: str = "0.0.0.0",
            extra: str = "", profile: str = "default") -> Path:
    """Create or refresh DIR; return the rendered config's path."""
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    _check_reachable_by_broker(data.parent)
    if os.getuid() == 0:
        os.chown(data, _mosquitto_uid(), -1)
        data.chmod(0o750)
    template = (CONFIG_DIR / PROFILES[profile]).read_text()
    conf = template.format(data=data, port=port, fleet_port=fleet_port, bind=bind, extra=extra,
                           max_connections=CITY_MAX_CONNECTIONS)
    (data / "mosquitto.conf").write_text(conf)
    write_private(data / "acl", (CONFIG_DIR / "acl").read_text())
    secret = data / "fleet.password"
    if not secret.exists():
        password = new_password()
        write_private(secret, password + "\n", for_broker=False)
        write_private(data / "fleet.hash", mosquitto_hash(password) + "\n", for_broker=False)
    fleet_line = f"{FLEET_USER}:{(data / 'fleet.hash').read_text().strip()}"
    passwd = data / "passwd"
    if passwd.exists():
        lines = [ln for ln in passwd.read_text().splitlines()
                 if ln and not ln.startswith(f"{FLEET_USER}:")]
    else:
        lines = []
    write_private(passwd, "\n".join([fleet_line, *lines]) + "\n")
    info = {"device_url": f"mqtt://127.0.0.1:{port}", "fleet_url": f"mqtt://127.0.0.1:{fleet_port}",
            "port": port, "fleet_port": fleet_port, "bind": bind, "profile": profile}
    (data / "broker.json").write_text(json.dumps(info, indent=2) + "\n")
    return data / "mosquitto.conf"


def exec_broker(data_dir: str, port: int, fleet_port: Optional[int] = None,
                bind: str = "0.0.0.0", profile: str = "default") -> None:
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if mosquitto is None:
        raise BrokerSetupError("mosquitto is not installed: apt-get install mosquitto")
    conf = prepare(data_dir, port, fleet_port or port + 1, bind, profile=profile)
    if profile == "city":
        got = raise_nofile(CITY_MAX_CONNECTIONS + 1024)
        if got < CITY_MAX_CONNECTIONS + 64:
            print(f"simpul-fleet broker: open-file limit {got}: fewer connections than "
                  f"{CITY_MAX_CONNECTIONS} will fit (run as root or raise `ulimit -n`)",
                  file=sys.stderr)
    (conf.parent / "mosquitto.pid").write_text(f"{os.getpid()}\n")
    os.execv(mosquitto, [mosquitto, "-c", str(conf)])
