"""A box's own key and certificate request, for the broker's TLS listener.

The key is made on the technician's laptop and written only to the card; the fleet
signs the request and sees the public key alone. P-256: small, and fast on a Pi's TLS
handshake.
"""

from typing import Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_key_and_csr(device_id: str) -> Tuple[str, str]:
    """(key PEM, certificate request PEM) with CN = device id."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()
