"""Settings of one fleet process, from the command line."""

import json
from pathlib import Path
from typing import Optional, Tuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from fleet_api.broker.accounts import FLEET_USER
from fleet_api.errors import FleetError
from simpul_wire.topics import fleet_name


class SettingsError(FleetError, ValueError):
    """A setting that cannot be used; the message says which and why."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    db_url: str
    mqtt_url: Optional[str] = None
    broker_data: Optional[str] = None
    mqtt_password_file: Optional[str] = None
    device_broker_url: Optional[str] = None
    device_tls_url: Optional[str] = None
    updates_dir: Optional[str] = None
    heartbeat_timeout_s: float = Field(default=120.0, gt=0)
    ingest: bool = True
    ingest_client_id: str = fleet_name("ingest_1")

    def broker_endpoint(self) -> Tuple[str, int, str]:
        """(host, port, username) of the fleet's own broker connection."""
        url = self.mqtt_url
        if url is None and self.broker_data:
            url = self._broker_info()["fleet_url"]
        if url is None:
            raise SettingsError("give --mqtt URL or --broker-data DIR")
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise SettingsError(f"--mqtt {url!r} must look like mqtt://host:port")
        if parts.password:
            raise SettingsError("--mqtt must not carry a password; use --mqtt-password-file")
        user = parts.username or FLEET_USER
        return parts.hostname, parts.port or 1883, user

    def broker_password(self) -> str:
        if self.mqtt_password_file:
            path = Path(self.mqtt_password_file)
        elif self.broker_data:
            path = Path(self.broker_data) / "fleet.password"
        else:
            raise SettingsError("give --mqtt-password-file FILE or --broker-data DIR")
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"cannot read the broker password from {path}: "
                                f"{exc.strerror}") from exc

    def sealing_key_path(self) -> Optional[Path]:
        """The key that seals secrets kept in the database (fleet_api/sealing.py): beside
        the fleet's broker password in the broker data dir, which every fleet process of
        one site shares; else beside the SQLite file. Never in the database itself."""
        if self.broker_data:
            return Path(self.broker_data) / "sealing.key"
        if self.db_url.startswith("sqlite:///"):
            db_file = self.db_url[len("sqlite:///"):]
            if db_file and db_file != ":memory:":
                return Path(db_file).parent / "sealing.key"
        return None

    def device_url(self) -> str:
        if self.device_broker_url:
            return self.device_broker_url
        if self.broker_data:
            return str(self._broker_info()["device_url"])
        host, port, _ = self.broker_endpoint()
        return f"mqtt://{host}:{port}"

    def tls_url(self) -> Optional[str]:
        """The broker's TLS listener for certificate logins, if it runs one."""
        if self.device_tls_url:
            return self.device_tls_url
        if not self.broker_data:
            return None
        url = self._broker_info().get("tls_url")
        return str(url) if url else None

    def _broker_info(self) -> dict:  # type: ignore[type-arg]
        path = Path(self.broker_data or "") / "broker.json"
        try:
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{path}: not a broker data dir made by "
                                f"`simpul-fleet broker` ({exc})") from exc
