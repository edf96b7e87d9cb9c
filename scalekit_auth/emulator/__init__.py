"""A local Scalekit emulator for offline tests and demos.

The real `scalekit-sdk-python` talks to it over real TLS (HTTPS and gRPC on one
127.0.0.1 port). Other skills can use it in their own tests::

    from scalekit_auth.emulator import Emulator

    with Emulator() as emu:
        emu.seed("gmail_u3134a", "alice")
        os.environ.update(emu.env)
        ...
"""

from .server import ADMIN_HEADER, DEFAULT_CONNECTIONS, STATUSES, Emulator, EmulatorError, parse_connection
from .tls import CertificateAuthority

__all__ = [
    "ADMIN_HEADER",
    "DEFAULT_CONNECTIONS",
    "STATUSES",
    "CertificateAuthority",
    "Emulator",
    "EmulatorError",
    "parse_connection",
]
