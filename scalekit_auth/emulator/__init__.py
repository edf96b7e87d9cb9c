"""A local Scalekit emulator for offline tests and demos.

The real `scalekit-sdk-python` talks to it over real TLS (HTTPS and gRPC on one
127.0.0.1 port). Other skills can use it in their own tests::

    from scalekit_auth.emulator import Emulator

    with Emulator() as emu:
        emu.seed("gmail_u3134a", "alice")
        os.environ.update(emu.env)
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """The names above, loaded on first use (PEP 562): `python3 -m scalekit_auth.emulator --help`
    imports this package without gRPC, and a bare Python gets the skill's packages as the demo
    does (bootstrap), or a MissingDependencyError saying how to install them."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_packages()
    from . import server, tls

    return getattr(tls if name == "CertificateAuthority" else server, name)


def require_packages() -> None:
    """Make the emulator's packages importable (the SDK brings gRPC and protobuf; cryptography is listed
    in requirements.txt): on a bare Python the private environment, else MissingDependencyError."""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in ("scalekit", "grpc", "cryptography")):
        return  # the usual case: found without importing anything
    from ..bootstrap import import_or_explain

    import_or_explain("scalekit.client", "scalekit-sdk-python")
    import_or_explain("cryptography", "cryptography")
