"""Simpul's Mosquitto plugin (broker_config/plugin/simpul_acl.c): built, installed into a
broker's data dir, and configured per listener from the wire contract's leaf table.

Built with the system's C compiler against Mosquitto's own headers (Debian:
`mosquitto-dev`), once per source version: the shared object is cached by the source's
hash and copied into each data dir, where the `mosquitto` user can read it.
"""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import broker_config
from fleet_api.errors import FleetError
from simpul_wire.topics import LEAF_RULES

PLUGIN_DIR = broker_config.path("plugin")
SOURCES = (PLUGIN_DIR / "simpul_acl.c", PLUGIN_DIR / "access_data.c")
HEADERS = (Path("/usr/include/mosquitto_broker.h"), Path("/usr/include/openssl/evp.h"))
ACCESS_FILE = "access.data"
PASSWORD_FILE = "passwd"  # Mosquitto's format, read by the plugin, not by password_file
RELOAD_TOPIC = "$CONTROL/simpul/v1/reload"


class PluginBuildError(FleetError):
    """The plugin cannot be built here; the message says what to install."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "simpul"


def built() -> Path:
    """The compiled plugin for the current source, building it on first use."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in (
        *SOURCES, PLUGIN_DIR / "access_data.h"))).hexdigest()[:12]
    target = _cache_dir() / f"simpul_acl-{digest}.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not all(h.exists() for h in HEADERS):
        raise PluginBuildError("the broker's access plugin needs a C compiler, Mosquitto's "
                               "and OpenSSL's headers: apt-get install gcc mosquitto-dev "
                               "libssl-dev")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    run = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-I", str(PLUGIN_DIR),
                          "-o", str(tmp), *map(str, SOURCES), "-lcrypto"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PluginBuildError(f"building the access plugin failed: {run.stderr.strip()[-500:]}")
    os.replace(tmp, target)  # several brokers may build at once; the last rename wins
    return target


def install(data: Path) -> Path:
    """Copy the plugin into the broker's data dir (readable by the mosquitto user)."""
    src = built()
    dest = data / "simpul_acl.so"
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    tmp.chmod(0o644)
    os.replace(tmp, dest)
    return dest


def leaves_option() -> str:
    """The contract's leaf table as the plugin reads it: leaf:writer:retained:max_bytes."""
    return ",".join(f"{leaf}:{rule.writer[0]}:{'r' if rule.retained else '-'}:{rule.max_bytes}"
                    for leaf, rule in LEAF_RULES.items())


def listener_lines(plugin: Path, data: Path, listener: str) -> str:
    """The plugin's lines for one listener ("device" or "fleet")."""
    return (f"plugin {plugin}\n"
            f"plugin_opt_listener {listener}\n"
            f"plugin_opt_leaves {leaves_option()}\n"
            f"plugin_opt_passwords {data / PASSWORD_FILE}\n"
            f"plugin_opt_data {data / ACCESS_FILE}\n")
