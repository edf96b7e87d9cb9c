"""The emulator's certificates pass strict X.509 verification (Python 3.13's default, OpenSSL's -x509_strict).

Checked directly, not only through the SDK: a fresh CA and the shared one, each with a leaf it issued.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scalekit_auth.emulator import CertificateAuthority, Emulator


def _first_pem(path) -> bytes:
    """The leaf alone: the chain file holds the leaf followed by the CA."""
    text = path.read_bytes()
    end = b"-----END CERTIFICATE-----"
    return text[: text.index(end) + len(end)] + b"\n"


def _strict_context(cafile: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@pytest.fixture(params=["fresh", "shared"])
def authority(request, tmp_path):
    return CertificateAuthority(tmp_path / "ca") if request.param == "fresh" else CertificateAuthority.shared()


@pytest.mark.system
def test_openssl_verifies_ca_and_leaf_in_strict_mode(authority, tmp_path):
    leaf = authority.issue_server_certificate(tmp_path / "leaf")
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_bytes(_first_pem(leaf.cert_path))
    for cert, purpose in ((authority.cert_path, "any"), (leaf_only, "sslserver")):
        proc = _openssl_verify(authority.cert_path, cert, "-x509_strict", "-purpose", purpose)
        assert proc.returncode == 0 and proc.stdout.strip().endswith(": OK"), proc.stdout + proc.stderr


def test_python_strict_handshake_with_a_running_emulator(authority):
    with Emulator(ca=authority) as emu:
        port = int(emu.url.rsplit(":", 1)[1])
        ctx = _strict_context(str(authority.cert_path))
        with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.selected_alpn_protocol() == "http/1.1"
                names = dict(x[0] for x in tls.getpeercert()["subject"])
                assert names["commonName"] == "127.0.0.1"


def _lax_ca_and_leaf():
    """A CA and leaf as the emulator used to make them: no key identifiers, so strict mode refuses the leaf."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lax CA")])
    ca = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lax")]))
        .issuer_name(name).public_key(leaf_key.public_key()).serial_number(2)
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return ca_key, ca, leaf


def _openssl_verify(ca: Path, cert: Path, *flags: str) -> subprocess.CompletedProcess:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is missing: apt-get install openssl (see .ci/run)"
    return subprocess.run(
        [openssl, "verify", *flags, "-CAfile", str(ca), str(cert)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.system
def test_strict_mode_is_really_checked(tmp_path):
    """The checks above can fail: a leaf without an authority key identifier passes lax mode only."""
    _, ca, leaf = _lax_ca_and_leaf()
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    lax = _openssl_verify(tmp_path / "ca.pem", tmp_path / "leaf.pem")
    strict = _openssl_verify(tmp_path / "ca.pem", tmp_path / "leaf.pem", "-x509_strict")
    assert lax.returncode == 0, lax.stdout + lax.stderr
    assert strict.returncode != 0 and "Authority Key Identifier" in strict.stdout + strict.stderr


@pytest.mark.system
def test_a_ca_directory_from_an_older_version_is_renewed(tmp_path):
    """A reused --ca-dir holding a CA without key identifiers gets a strict one in its place."""
    ca_key, ca, _ = _lax_ca_and_leaf()
    folder = tmp_path / "ca"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "ca-key.pem").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (folder / "ca-bundle.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    authority = CertificateAuthority(folder)
    assert authority.cert_path.read_bytes() != ca.public_bytes(serialization.Encoding.PEM)
    assert authority.bundle_path.read_bytes().startswith(authority.cert_path.read_bytes())
    leaf = authority.issue_server_certificate(tmp_path / "leaf")
    (tmp_path / "leaf.pem").write_bytes(_first_pem(leaf.cert_path))
    proc = _openssl_verify(authority.cert_path, tmp_path / "leaf.pem", "-x509_strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert CertificateAuthority(folder).cert_path.read_bytes() == authority.cert_path.read_bytes()  # now kept
