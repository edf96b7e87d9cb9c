"""`python3 -m scalekit_auth.emulator`: run a Scalekit emulator until interrupted."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading

from .state import STATUSES

PROG = "python3 -m scalekit_auth.emulator"
EPILOG = """\
examples:
  # print export lines, then serve until Ctrl-C
  python3 -m scalekit_auth.emulator --seed gmail_u3134a:alice:ACTIVE

  # in the background, for a script (the README has the whole recipe, in a throwaway folder):
  python3 -m scalekit_auth.emulator --env-file "$DIR/emu.env" >/dev/null &

It needs the skill's packages (requirements.txt): on a Python without them the first run installs
them privately, as the skill's demo does (SCALEKIT_AUTH_AUTOINSTALL=0: it says how instead).
"""


def _parse_seed(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) < 3 or not parts[0] or not parts[-1]:
        raise argparse.ArgumentTypeError(f"--seed wants CONNECTION:IDENTIFIER:STATUS, got {spec!r}")
    connection, status, identifier = parts[0], parts[-1].upper(), ":".join(parts[1:-1])
    if not identifier:
        raise argparse.ArgumentTypeError(f"--seed {spec!r}: the identifier is empty")
    if status not in STATUSES:
        raise argparse.ArgumentTypeError(f"--seed {spec!r}: status must be one of {', '.join(STATUSES)}")
    return connection, identifier, status


def _default_connections() -> str:
    """The built-in connections, for --help; without the packages (server imports gRPC), a description."""
    try:
        from .server import DEFAULT_CONNECTIONS
    except ImportError:
        return "the built-in demo connections"
    return ",".join(DEFAULT_CONNECTIONS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Run a local Scalekit emulator (HTTPS + gRPC over TLS on 127.0.0.1) for offline use.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=0, help="TLS port for HTTPS and gRPC (default: any free port)")
    p.add_argument("--consent-port", type=int, default=0, help="HTTP port for consent pages (default: any free port)")
    p.add_argument(
        "--connections",
        default=None,
        help="comma-separated connection names; add ':static' for API-key connections "
        f"(default: {_default_connections()})",
    )
    p.add_argument(
        "--seed",
        action="append",
        type=_parse_seed,
        default=[],
        metavar="CONNECTION:IDENTIFIER:STATUS",
        help="create an account in that status (repeatable)",
    )
    p.add_argument("--client-id", help="client id to accept (default: random)")
    p.add_argument("--client-secret", help="client secret to accept (default: random)")
    p.add_argument("--link-ttl", type=float, default=60.0, help="authorization link lifetime in seconds (default: 60)")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="access token lifetime in seconds (default: 3600)")
    p.add_argument("--latency", type=float, default=0.0, help="added delay per call in seconds (default: 0)")
    p.add_argument("--ca-dir", help="directory holding (or receiving) the emulator CA; reuse it across restarts")
    p.add_argument("--env-file", help="also write the export lines to this file (mode 0600)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..errors import ScalekitAuthError
    from . import require_packages

    try:
        require_packages()
    except ScalekitAuthError as err:  # one line saying how to get them, never a traceback
        from ..display import printable

        print(f"{PROG}: {printable(str(err), keep_newlines=False)}", file=sys.stderr)
        return int(err.exit_code)
    from .server import DEFAULT_CONNECTIONS, Emulator
    from .tls import CertificateAuthority

    connections = args.connections if args.connections is not None else ",".join(DEFAULT_CONNECTIONS)
    try:
        ca = CertificateAuthority(args.ca_dir) if args.ca_dir else CertificateAuthority.shared()
        emu = Emulator(
            port=args.port,
            consent_port=args.consent_port,
            connections=[c for c in connections.split(",") if c.strip()],
            client_id=args.client_id,
            client_secret=args.client_secret,
            link_ttl=args.link_ttl,
            token_ttl=args.token_ttl,
            ca=ca,
        )
        emu.start()
    except (OSError, ValueError) as err:
        print(f"emulator: cannot start: {err}", file=sys.stderr)
        return 1
    # Handlers first (a TERM right after the ready lines must still stop the servers), and ones that
    # take no lock: raising here ends the wait below wherever the main thread is inside it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_now)
    try:
        for connection, identifier, status in args.seed:
            emu.seed(connection, identifier, status)
        if args.latency:
            emu.set_latency(args.latency)
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in emu.env.items())
        if args.env_file:
            fd = os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(exports)
        sys.stdout.write(exports)
        sys.stdout.flush()
        print(
            f"Scalekit emulator on {emu.url} (consent pages and admin API on {emu.pages_url}); Ctrl-C stops it.",
            file=sys.stderr,
        )
        threading.Event().wait()  # until a signal raises _Stopped
    except _Stopped:
        pass
    finally:
        emu.stop()
    return 0


class _Stopped(BaseException):
    """Raised by the SIGINT/SIGTERM handler in the main thread: the emulator stops."""


def _stop_now(signum: int, frame: object) -> None:
    raise _Stopped


if __name__ == "__main__":
    sys.exit(main())
