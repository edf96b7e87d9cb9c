"""Shared fixtures: a running emulator per test, and an isolated skill folder.

gRPC reads its trusted roots once per process, so every emulator in the test run
shares one CA, and the CA variables are set before any test makes a channel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scalekit_auth.emulator import CertificateAuthority, Emulator  # noqa: E402

_CA = CertificateAuthority.shared()
for _name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
    os.environ[_name] = str(_CA.bundle_path)
os.environ["SCALEKIT_EMULATOR_CA_DIR"] = str(_CA.directory)


@pytest.fixture
def emulator():
    """A fresh emulator with the default connections; stopped after the test."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def sdk(emulator):
    """A real ScalekitClient pointed at the emulator."""
    from scalekit.client import ScalekitClient

    client = ScalekitClient(emulator.url, emulator.client_id, emulator.client_secret)
    yield client
    client.core_client.grpc_secure_channel.close()
