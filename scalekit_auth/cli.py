"""The `scalekit-auth` command line (and `get_token.py`, which is `scalekit-auth token`).

argparse keeps start-up fast (no third-party import before the arguments are checked).
stdout carries data only (a token, a table); every message goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Callable

from .errors import ExitCode, ScalekitAuthError

PROG = "scalekit-auth"
DEBUG_VAR = "SCALEKIT_AUTH_DEBUG"

EXIT_CODES_HELP = """\
exit codes:
  0  success                       4  authorization needed (link on stderr)
  1  unexpected error              5  Scalekit unreachable or timed out
  2  bad command-line usage        6  Scalekit rejected the client credentials
  3  configuration problem         7  rate-limited by Scalekit
                                   8  account has no single token (use get_credentials)
"""

SHELL_EXAMPLES = """\
examples:
  TOKEN=$({prog} gmail)
  {prog} gmail --identifier alice
  {{ read -r GMAIL; read -r SLACK; }} < <({prog} gmail slack)   # one token per line, in order
"""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logging on stderr")
    return common


def _add_token_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("services", nargs="+", metavar="SERVICE", help="service name(s) from connections.json, e.g. gmail")
    p.add_argument("--identifier", "-i", metavar="ID", help="whose account (default: connections.json, then the agent)")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fresh OAuth tokens from Scalekit's token vault, never written to disk.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common()],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "token",
        parents=[_common()],
        help="print a fresh token for SERVICE on stdout",
        description="Print a fresh access token (or API key) for each SERVICE, one per line on stdout.",
        epilog=SHELL_EXAMPLES.format(prog=f"{prog} token") + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_token_arguments(p)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "config",
        parents=[_common()],
        help="register which Scalekit connection serves SERVICE",
        description="Write SERVICE -> CONNECTION_NAME into connections.json (atomically; other entries are kept).",
        epilog=f"examples:\n  {prog} config gmail gmail_u3134a\n  {prog} config slack slack_x7y9z --identifier alice\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("service", metavar="SERVICE", help="short service name, e.g. gmail")
    p.add_argument("connection_name", metavar="CONNECTION_NAME", help="the connection's name in the Scalekit dashboard")
    p.add_argument("--identifier", "-i", metavar="ID", help="default account identifier for this service")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "demo",
        parents=[_common()],
        help="walk the whole flow against a local Scalekit emulator (no account needed)",
        description="Start a local Scalekit emulator and walk the real flow: not configured -> configured -> "
        "authorization link -> token. Your own .env and connections.json are not touched.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--service", default="gmail", help="service to demonstrate (default: gmail)")
    p.add_argument(
        "--browser",
        action="store_true",
        help="open the authorization link in your browser and wait for your click (default: simulate the click)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for your click with --browser")
    p.set_defaults(func=cmd_demo)
    return parser


def build_token_parser(prog: str) -> argparse.ArgumentParser:
    """`get_token.py SERVICE`: the same as `scalekit-auth token SERVICE`."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Print a fresh access token (or API key) for each SERVICE, one per line on stdout.",
        epilog=SHELL_EXAMPLES.format(prog=f"python3 {prog}") + "\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common()],
    )
    _add_token_arguments(p)
    p.set_defaults(func=cmd_token)
    return p


# -- commands ------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace, broker) -> int:
    """One token per line, in the order asked; all or nothing."""
    if len(args.services) == 1:
        tokens = [broker.get_token(args.services[0], args.identifier)]
    else:
        tokens = list(broker.get_tokens(args.services, args.identifier).values())
    sys.stdout.write("".join(token + "\n" for token in tokens))
    sys.stdout.flush()
    return ExitCode.OK


def cmd_config(args: argparse.Namespace, broker) -> int:
    change = broker.configure_connection(args.service, args.connection_name, args.identifier)
    print(f"{change.describe()} in {broker.connections_file}", file=sys.stderr)
    return ExitCode.OK


def cmd_demo(args: argparse.Namespace, broker) -> int:
    from .demo import run_demo

    return run_demo(service=args.service, browser=args.browser, timeout=args.timeout)


# -- running -------------------------------------------------------------------------


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None, prog: str) -> int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    debug = args.debug or os.environ.get(DEBUG_VAR, "") not in ("", "0")
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format=f"{prog}: %(name)s: %(message)s", stream=sys.stderr)
    from .broker import TokenBroker

    broker = TokenBroker()
    func: Callable[[argparse.Namespace, TokenBroker], int] = args.func
    try:
        return int(func(args, broker))
    except ScalekitAuthError as err:
        if debug:
            traceback.print_exc()
        print(f"{prog}: {err}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.ERROR)
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback without --debug
        if debug:
            traceback.print_exc()
        print(
            f"{prog}: unexpected error ({err.__class__.__name__}). Run again with --debug and report it.",
            file=sys.stderr,
        )
        return int(ExitCode.ERROR)
    finally:
        broker.close()


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Entry point of `scalekit-auth` / `python3 -m scalekit_auth`."""
    return _run(build_parser(prog), argv, prog)


def get_token_main(argv: Sequence[str] | None = None, prog: str = "get_token.py") -> int:
    """Entry point of `get_token.py`."""
    return _run(build_token_parser(prog), argv, prog)
