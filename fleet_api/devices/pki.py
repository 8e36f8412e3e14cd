"""The fleet's certificate authority, for the broker's TLS listener with client
certificates (`use_identity_as_username`).

DIR/tls/ (DIR is the broker's data dir) holds:
- `ca.key` (root only; the broker never needs it) and `ca.pem`, the fleet's CA;
- `server.key` and `server.pem`, the broker's certificate, signed by the CA;
- `crl.pem`, the CA's revocation list, read by Mosquitto when it starts (the fleet sends
  no SIGHUP, docs/security.md); until then the access plugin denies the revoked identity
  everything (fleet_api/devices/revoke.py).

A device certificate's subject is always CN=<device id>, whatever the request asked:
the broker takes the CN as the username, and the ACL confines a username to its tree.
"""

import datetime
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, List, Optional, Tuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet_api.broker.accounts import write_private
from fleet_api.errors import FleetError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

CA_DAYS = 3650 * 2
SERVER_DAYS = 825
DEVICE_DAYS = 3650


class PkiError(FleetError):
    """The CA is missing or a certificate request cannot be signed; the message says why."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class FleetCA:
    def __init__(self, broker_data: str) -> None:
        self.dir = Path(broker_data) / "tls"

    @property
    def ca_pem(self) -> Path:
        return self.dir / "ca.pem"

    def exists(self) -> bool:
        return (self.dir / "ca.key").exists() and self.ca_pem.exists()

    def ensure(self, server_names: Iterable[str] = ()) -> None:
        """Create the CA, the broker's certificate and an empty CRL where missing."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            from fleet_api.broker.accounts import _mosquitto_ids

            os.chown(self.dir, -1, _mosquitto_ids()[1])
            self.dir.chmod(0o750)
        if not self.exists():
            key = new_key()
            name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Simpul"),
                              x509.NameAttribute(NameOID.COMMON_NAME, "Simpul fleet CA")])
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(_now() - datetime.timedelta(minutes=5))
                    .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .add_extension(x509.KeyUsage(
                        digital_signature=False, content_commitment=False,
                        key_encipherment=False, data_encipherment=False, key_agreement=False,
                        key_cert_sign=True, crl_sign=True, encipher_only=False,
                        decipher_only=False), critical=True)
                    .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                   critical=False)
                    .sign(key, hashes.SHA256()))
            write_private(self.dir / "ca.key", _key_pem(key), for_broker=False)
            write_private(self.ca_pem, _pem(cert))
            for stale in ("server.pem", "server.key", "crl.pem"):
                (self.dir / stale).unlink(missing_ok=True)
        if not (self.dir / "server.pem").exists():
            key = new_key()
            names = ["localhost", "127.0.0.1", *server_names]
            cert = self._sign(key.public_key(), names[0], SERVER_DAYS, server=True,
                              san=names)
            write_private(self.dir / "server.key", _key_pem(key))
            write_private(self.dir / "server.pem", _pem(cert))
        if not (self.dir / "crl.pem").exists():
            self.write_crl([])

    def _load_ca(self) -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists():
            raise PkiError(f"this fleet has no CA in {self.dir}: start the broker with "
                           "`simpul-fleet broker --tls-port PORT ...` once to create it")
        cert = x509.load_pem_x509_certificate(self.ca_pem.read_bytes())
        key = serialization.load_pem_private_key((self.dir / "ca.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError("the CA key is not an EC key")
        return cert, key

    def _sign(self, public_key: object, cn: str, days: float, server: bool = False,
              san: Optional[List[str]] = None) -> x509.Certificate:
        ca_cert, ca_key = self._load_ca()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(ca_cert.subject).public_key(public_key)  # type: ignore[arg-type]
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(_now() - datetime.timedelta(minutes=5))
                   .not_valid_after(_now() + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca_key.public_key()), critical=False))
        if san:
            entries: List[x509.GeneralName] = []
            for name in san:
                try:
                    entries.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    entries.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def sign_device(self, csr_pem: str, device_id: str) -> x509.Certificate:
        """Sign a box's request. The subject becomes CN=<device_id>, whatever was asked."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            # Parsing is lazy: a damaged key or signature shows up only here.
            valid = csr.is_signature_valid
            key = csr.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise PkiError(f"not a usable PEM certificate request: {exc}") from exc
        if not valid:
            raise PkiError("the request's signature does not match its key")
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            raise PkiError("RSA keys need at least 2048 bits")
        if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey,
                                ed25519.Ed25519PublicKey)):
            raise PkiError("the request's key must be EC, RSA or Ed25519")
        return self._sign(key, device_id, DEVICE_DAYS)

    def write_crl(self, serials: Iterable[int]) -> None:
        """Rewrite crl.pem with every revoked serial (Mosquitto re-reads it on SIGHUP)."""
        ca_cert, ca_key = self._load_ca()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
                   .last_update(_now() - datetime.timedelta(minutes=5))
                   .next_update(_now() + datetime.timedelta(days=3650)))
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(_now()).build())
        write_private(self.dir / "crl.pem",
                      builder.sign(ca_key, hashes.SHA256())
                      .public_bytes(serialization.Encoding.PEM).decode())


def pem(cert: x509.Certificate) -> str:
    return _pem(cert)


# -- the certificates table: what was issued to whom, and what is revoked -------------------
def issue(engine: "Engine", ca: FleetCA, device_id: str, csr_pem: str) -> x509.Certificate:
    from fleet_api.db import certificates, utcnow

    cert = ca.sign_device(csr_pem, device_id)
    with engine.begin() as conn:
        conn.execute(certificates.insert().values(
            serial=format(cert.serial_number, "x"), device_id=device_id, issued_at=utcnow(),
            not_after=cert.not_valid_after_utc.replace(tzinfo=None)))
    return cert


def revoke_device(engine: "Engine", ca: Optional[FleetCA], device_id: str) -> int:
    """Mark every live certificate of the device revoked and rewrite the CRL; returns how
    many were revoked."""
    from sqlalchemy import select, update

    from fleet_api.db import certificates, utcnow

    with engine.begin() as conn:
        count = conn.execute(update(certificates).where(
            certificates.c.device_id == device_id, certificates.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())).rowcount
        serials = [int(r[0], 16) for r in conn.execute(
            select(certificates.c.serial).where(certificates.c.revoked_at.is_not(None))
            .order_by(certificates.c.serial))]
    if count and ca is not None and ca.exists():
        ca.write_crl(serials)
    return int(count or 0)


def revoked_identities(engine: "Engine") -> List[str]:
    """Device ids the broker must deny: a certificate revoked after the device's current
    registration (or with no registration left). Registering the id again lifts it."""
    from sqlalchemy import and_, or_, select

    from fleet_api.db import certificates, devices

    query = (select(certificates.c.device_id).distinct()
             .select_from(certificates.outerjoin(
                 devices, devices.c.device_id == certificates.c.device_id))
             .where(certificates.c.revoked_at.is_not(None),
                    or_(devices.c.device_id.is_(None),
                        and_(devices.c.created_at <= certificates.c.revoked_at)))
             .order_by(certificates.c.device_id))
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(query)]
