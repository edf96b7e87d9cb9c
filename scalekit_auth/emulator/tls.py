"""Throwaway TLS material for the emulator: one CA per directory, one server certificate per start.

Both certificates meet strict X.509 verification (Python 3.13's default `VERIFY_X509_STRICT`,
OpenSSL's `-x509_strict`): key identifiers on both, critical basicConstraints, key usage that
matches the role, a subjectAltName on the leaf.

gRPC reads its trusted roots once per process, so every emulator a process starts
must be signed by the same CA. `CertificateAuthority.shared()` gives that CA.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
BUNDLE_NAME = "ca-bundle.pem"
SYSTEM_BUNDLE_CANDIDATES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)

_shared_lock = threading.Lock()
_shared: CertificateAuthority | None = None


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signing for both; certificate and CRL signing only for the CA (strict verifiers check the role)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


@dataclass(frozen=True)
class ServerCertificate:
    """Paths of a server certificate chain and its key, for `ssl.SSLContext.load_cert_chain`."""

    cert_path: Path
    key_path: Path


class CertificateAuthority:
    """A private CA kept in a directory; created there on first use, reused afterwards."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = self.directory / CA_CERT_NAME
        self.key_path = self.directory / CA_KEY_NAME
        self.bundle_path = self.directory / BUNDLE_NAME
        loaded = self._load()
        if loaded is None:
            self._key, self._cert = self._create()
            self._write_bundle()
        else:
            self._key, self._cert = loaded
            if not self.bundle_path.exists():
                self._write_bundle()

    def _load(self):
        """The CA already in the directory, or None when there is none or it would fail strict checks."""
        if not (self.cert_path.exists() and self.key_path.exists()):
            return None
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        try:  # made by an older version, without the extensions strict verifiers require
            cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
            cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        except x509.ExtensionNotFound:
            return None
        if cert.not_valid_after_utc <= _now() + _dt.timedelta(days=8):  # must outlive the leaves it signs
            return None
        return key, cert

    @classmethod
    def shared(cls) -> CertificateAuthority:
        """The CA every emulator in this process uses unless told otherwise."""
        global _shared
        with _shared_lock:
            if _shared is None:
                directory = os.environ.get("SCALEKIT_EMULATOR_CA_DIR") or tempfile.mkdtemp(
                    prefix="scalekit-emulator-ca-"
                )
                _shared = cls(directory)
            return _shared

    def _create(self):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scalekit-auth emulator CA")])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(
            self.key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def _write_bundle(self) -> None:
        """Our CA plus the system roots, so pointing REQUESTS_CA_BUNDLE here breaks nothing else."""
        parts = [self.cert_path.read_bytes()]
        for candidate in SYSTEM_BUNDLE_CANDIDATES:
            try:
                parts.append(Path(candidate).read_bytes())
                break
            except OSError:
                continue
        self.bundle_path.write_bytes(b"\n".join(parts))

    def issue_server_certificate(self, directory: str | os.PathLike[str]) -> ServerCertificate:
        """A fresh leaf for 127.0.0.1 and localhost, written to `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=7))
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.DNSName("localhost"),
                    ]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._cert.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_path = directory / "server.pem"
        key_path = directory / "server-key.pem"
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM) + self._cert.public_bytes(serialization.Encoding.PEM)
        )
        return ServerCertificate(cert_path, key_path)
