"""`get_token.py SERVICE...` answered by a warm agent, loading almost nothing.

Only the plain form (service names, no options) and only the happy path: the agent answers
one line `OK<TAB>token<TAB>token...`. Anything else (no agent, an option, an error, a token
that is not plain text) returns None and the full command line does the work, with its
messages and exit codes. Standard library pieces only (os, sys, socket via .wire); no json,
argparse, re or hashlib, so this costs a few milliseconds on top of starting Python.
"""

from __future__ import annotations

import os
import sys

from . import paths, wire
from .lines import lines_request, parse_lines

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _plain_service(arg: str) -> bool:
    return 0 < len(arg) <= 64 and arg[0] not in "-._" and set(arg) <= _NAME_CHARS


def tokens_from_agent(argv: list[str], prog: str = "get_token.py") -> int | None:
    """Print the tokens for `argv` (service names) from a running agent; None to take the full path."""
    try:
        return _tokens_from_agent(argv)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130  # ExitCode.INTERRUPTED, as the full path reports Ctrl-C


def _tokens_from_agent(argv: list[str]) -> int | None:
    if not argv or not all(_plain_service(a) for a in argv):
        return None
    env = os.environ
    if not paths.agent_enabled(env):
        return None
    path = paths.agent_socket(env)
    if not wire.usable(path):
        return None
    services = list(dict.fromkeys(argv))
    request = lines_request(paths.context_fingerprint(env), services)
    line = None
    for attempt in range(2):
        try:
            if wire.trusted_socket(path):
                line, _ = wire.exchange(path, request, wire.answer_within(env))
                break
        except (ConnectionRefusedError, FileNotFoundError):
            pass  # the agent died and left its socket behind: start a new one
        except TimeoutError:  # stuck or slow: never asked again by this process (the full path neither)
            wire.give_up(path, "it did not answer in time")
            return None
        except OSError:
            return None
        if attempt:
            return None
        from .agent import autostart  # the first call (or after a crash): start the agent once, then ask it

        if not autostart(env):
            return None
    tokens = parse_lines(line, len(services))
    if tokens is None:
        return None
    try:
        out = sys.stdout.buffer
        out.write(b"".join(t + b"\n" for t in tokens))
        out.flush()
    except (OSError, ValueError, AttributeError):
        return None  # a closed or full stdout (or none at all): the full path reports it properly
    return 0
