"""The production option: Mosquitto's TLS listener with client certificates
(`use_identity_as_username`), certificates issued by the fleet's CA, and revocation.

Real components: `simpul-fleet broker --tls-port`, `simpul-fleet serve`, paho over TLS,
and `simpul-field provision --tls` followed by `simpul-agent run` from the card."""

import datetime
import os
import ssl
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from simpul_field.provision.bundle import installed_device
from simpul_field.provision.tls import new_key_and_csr
from testbed.harness import Broker, Fleet, agent_process, telemetry, wait_until
from tests.field.helpers import SYNTHETIC, spawn

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_broker(scratch: Path) -> Iterator[Broker]:
    b = Broker(scratch, tls=True).start()
    yield b
    b.stop()


@pytest.fixture
def tls_fleet(scratch: Path, tls_broker: Broker) -> Iterator[Fleet]:
    f = Fleet(scratch, tls_broker).start()
    yield f
    f.stop()


class TlsBox:
    """A paho client on the TLS listener; records CONNACKs, PUBACK reason codes,
    disconnects and messages."""

    def __init__(self, broker: Broker, cert: Optional[Path], key: Optional[Path],
                 device_id: str = "whoever") -> None:
        self.connack: List[str] = []
        self.pubacks: Dict[int, str] = {}
        self.disconnects = 0
        self.messages: List[str] = []
        self.connected = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(broker.data / "tls" / "ca.pem"),
                  certfile=str(cert) if cert else None, keyfile=str(key) if key else None)
        c.will_set(f"simpul/v1/{device_id}/state", b"{}", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = lambda _c, _u, mid, rc, _p: self.pubacks.__setitem__(mid, str(rc))
        c.on_message = lambda _c, _u, msg: self.messages.append(msg.topic)
        self.client = c
        assert broker.tls_port is not None
        self.port: int = broker.tls_port

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack.append(str(rc))
        if not rc.is_failure:
            self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self.disconnects += 1
        self.connected.clear()

    def connect(self, timeout: float = 10.0) -> Optional[str]:
        """None when connected; otherwise what went wrong (a TLS error, or the CONNACK)."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=10)
        except (ssl.SSLError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        self.client.loop_start()
        if self.connected.wait(timeout):
            return None
        self.client.loop_stop()
        return f"no CONNACK ({self.connack})"

    def publish(self, topic: str) -> str:
        info = self.client.publish(topic, b"{}", qos=1)
        wait_until(lambda: info.mid in self.pubacks, 10, what=f"PUBACK for {topic}")
        return self.pubacks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def issue(fleet: Fleet, device_id: str, base: Path, cn: str = ""
          ) -> Tuple[Path, Path, Dict[str, Any]]:
    """A key and CSR made here (asking for another CN), signed by the fleet's CA."""
    key_pem, csr_pem = new_key_and_csr(cn or device_id)
    with fleet.api(fleet.create_token("technician")) as api:
        resp = api.post(f"/api/v1/devices/{device_id}/certificate", json={"csr": csr_pem})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    cert, key = base / f"{device_id}.pem", base / f"{device_id}.key"
    cert.write_text(body["certificate"])
    key.write_text(key_pem)
    return cert, key, body


def foreign_identity(base: Path, cn: str) -> Tuple[Path, Path]:
    """A certificate for CN=cn from a CA the broker has never heard of."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the fleet")])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = base / "foreign.pem", base / "foreign.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_good_foreign_and_no_certificate(scratch: Path, tls_fleet: Fleet) -> None:
    tls_fleet.register("tls-a")
    tls_fleet.register("tls-b")
    cert, key, body = issue(tls_fleet, "tls-a", scratch, cn="tls-b")
    # The CA signs CN=<device id>, whatever the request asked for.
    issued = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert issued.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tls-a"
    assert body["url"] == f"mqtts://127.0.0.1:{tls_fleet.broker.tls_port}"
    assert body["serial"] == format(issued.serial_number, "x")

    good = TlsBox(tls_fleet.broker, cert, key)
    assert good.connect() is None
    try:
        # Confined to its own tree by the CN: the ACL's %u is the certificate's identity.
        assert good.publish("simpul/v1/tls-a/health") in ("Success", "No matching subscribers")
        assert good.publish("simpul/v1/tls-b/health") == "Not authorized"
    finally:
        good.close()

    fcert, fkey = foreign_identity(scratch, "tls-a")
    assert TlsBox(tls_fleet.broker, fcert, fkey).connect(3) is not None
    assert TlsBox(tls_fleet.broker, None, None).connect(3) is not None
    log = (tls_fleet.broker.data / "mosquitto.log").read_text()
    assert "certificate verify failed" in log or "peer did not return a certificate" in log


def test_bad_requests_get_clear_errors(scratch: Path, tls_fleet: Fleet) -> None:
    tls_fleet.register("tls-c")
    tech = tls_fleet.create_token("technician")
    _key, csr = new_key_and_csr("tls-c")
    with tls_fleet.api(tech) as api:
        assert api.post("/api/v1/devices/nobody/certificate", json={"csr": csr}
                        ).status_code == 404
        bad = api.post("/api/v1/devices/tls-c/certificate", json={"csr": "not a request"})
        assert bad.status_code == 422 and "certificate request refused" in bad.text
        tampered = csr.replace(csr.splitlines()[3][:8], "AAAAAAAA")
        assert api.post("/api/v1/devices/tls-c/certificate", json={"csr": tampered}
                        ).status_code == 422
    with tls_fleet.api(tls_fleet.create_token("viewer")) as api:
        assert api.post("/api/v1/devices/tls-c/certificate", json={"csr": csr}
                        ).status_code == 403


def test_no_ca_is_a_clear_409(scratch: Path, fleet: Fleet) -> None:
    fleet.register("plain-a")
    _key, csr = new_key_and_csr("plain-a")
    with fleet.api() as api:
        resp = api.post("/api/v1/devices/plain-a/certificate", json={"csr": csr})
    assert resp.status_code == 409 and "--tls-port" in resp.text


def test_deregistered_tls_device_is_cut_off_at_once(scratch: Path, tls_fleet: Fleet) -> None:
    tls_fleet.register("tls-gone")
    tls_fleet.register("tls-stays")
    cert, key, _ = issue(tls_fleet, "tls-gone", scratch)
    other_cert, other_key, _ = issue(tls_fleet, "tls-stays", scratch)
    box = TlsBox(tls_fleet.broker, cert, key, "tls-gone")
    assert box.connect() is None
    box.client.subscribe("simpul/v1/tls-gone/cmd/+", qos=1)
    assert box.publish("simpul/v1/tls-gone/health") in ("Success", "No matching subscribers")

    with tls_fleet.api() as api:
        assert api.delete("/api/v1/devices/tls-gone").status_code == 204
    # The live TLS session was dropped, not left running until the box reconnects.
    wait_until(lambda: box.disconnects >= 1, 10, what="the live session dropped")
    box.close()
    # At once, with no broker restart and no SIGHUP (docs/security.md, "The broker's
    # crash"): the access plugin denies the revoked identity every publish and
    # subscribe, while the other box's certificate still works.
    access = (tls_fleet.broker.data / "access.data").read_text().splitlines()
    assert "X tls-gone" in access and "X tls-stays" not in access
    again = TlsBox(tls_fleet.broker, cert, key, "tls-gone")
    assert again.connect(3) is None  # the handshake passes until the broker restarts
    assert again.publish("simpul/v1/tls-gone/health") == "Not authorized"
    again.close()
    still = TlsBox(tls_fleet.broker, other_cert, other_key, "tls-stays")
    assert still.connect() is None
    assert still.publish("simpul/v1/tls-stays/health") in ("Success", "No matching subscribers")
    still.close()
    # After a restart, the CRL refuses it in the TLS handshake.
    tls_fleet.broker.stop()
    tls_fleet.broker.start()
    assert TlsBox(tls_fleet.broker, cert, key, "tls-gone").connect(3) is not None
    log = (tls_fleet.broker.data / "mosquitto.log").read_text()
    assert "certificate verify failed" in log

    # Registering the id again lifts the plugin's deny (its old certificate stays revoked).
    tls_fleet.register("tls-gone")
    wait_until(lambda: "X tls-gone" not in (tls_fleet.broker.data / "access.data").read_text(
        ).splitlines(), 10, what="the deny lifted")


def test_provision_tls_then_agent_reports_over_tls(scratch: Path, tls_fleet: Fleet) -> None:
    tech = tls_fleet.create_token("technician")
    device_id = f"tls-box-{os.getpid()}"
    (scratch / "card").mkdir()
    target = scratch / "card" / "simpul"
    (scratch / "collectors.toml").write_text(SYNTHETIC)
    log = scratch / "provision.log"
    proc = spawn(["provision", "--tls", "--device-id", device_id, "--site", "Taman Kota",
                  "--kind", "sensor", "--district", "Kota Barat", "--lat", "-6.2",
                  "--lon", "106.8", "--target", str(target), "--box-dir", str(target),
                  "--data-dir", str(scratch / "data"), "--collectors",
                  str(scratch / "collectors.toml"), "--label", str(scratch / "label.svg"),
                  "--timeout", "60"], scratch, log, tls_fleet.url, tech)
    agent = None
    try:
        wait_until(lambda: installed_device(target) == device_id, 30, what="the bundle")
        toml = (target / "agent.toml").read_text()
        assert f'url = "mqtts://127.0.0.1:{tls_fleet.broker.tls_port}"' in toml
        assert oct((target / "device.key").stat().st_mode & 0o777) == "0o600"
        agent = agent_process(scratch, target / "agent.toml", "agent").start()
        assert proc.wait(timeout=90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        if agent:
            agent.stop()
    assert f"online: {device_id}" in log.read_text()
    records = telemetry(tls_fleet, device_id)
    assert records and records[0]["metrics"]["pm2_5"] == 7.25
    broker_log = (tls_fleet.broker.data / "mosquitto.log").read_text()
    assert f"on port {tls_fleet.broker.tls_port}" in broker_log
