"""What each `scalekit-auth` subcommand does. Parsing lives in cli.py.

stdout carries data only (tokens, tables, JSON); messages go to stderr. A command
returns its exit code or raises a ScalekitAuthError, which cli.py prints.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any

from .broker import AccountStatus, ConnectionMatches, TokenBroker
from .connections import normalize_service
from .display import printable
from .errors import (
    AuthorizationError,
    BatchError,
    ConfigurationError,
    ExitCode,
    ScalekitAuthError,
    UsageError,
    most_pressing,
)
from .invocation import command
from .sources import Road

if TYPE_CHECKING:
    from .vault import AppConnection

# -- output helpers ---------------------------------------------------------------------


def use_color(stream: Any = None) -> bool:
    """Color only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    stream = stream or sys.stdout
    return (
        "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
        and hasattr(stream, "isatty")
        and stream.isatty()
    )


_COLORS = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2"}
#: Our own color codes, as printable() shows them escaped: the only escapes `safe` lets through.
_OUR_ESCAPES = re.compile(r"\\x1b\[(0|1|2|31|32|33)m")


def paint(text: str, color: str, stream: Any = None) -> str:
    return f"\033[{_COLORS[color]}m{text}\033[0m" if use_color(stream) else text


def safe(text: str) -> str:
    """`text` with every control character shown escaped (see display.printable), except the
    color codes `paint` adds (colors cannot move the cursor, retitle a window or hide text)."""
    return _OUR_ESCAPES.sub(lambda m: f"\033[{m.group(1)}m", printable(text))


def table(rows: list[list[str]], header: list[str]) -> str:
    rows = [[printable(str(v), False) for v in row] for row in rows]  # names come from files
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return "\n".join(lines) + "\n"


def say(message: str) -> None:
    """A line for people on stderr; names and values in it come from files and the network, so
    every control character is shown escaped."""
    print(safe(message), file=sys.stderr)


def in_words(expires_at: _dt.datetime | None) -> str:
    """'in 58 min', 'in 3 h', 'expired 2 min ago', or '' when unknown."""
    if expires_at is None:
        return ""
    left = (expires_at - _dt.datetime.now(_dt.UTC)).total_seconds()
    span = abs(left)
    amount = f"{span:.0f} s" if span < 90 else f"{span / 60:.0f} min" if span < 5400 else f"{span / 3600:.0f} h"
    return f"in {amount}" if left >= 0 else f"expired {amount} ago"


def iso(moment: _dt.datetime | None) -> str | None:
    return moment.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _batch(broker: TokenBroker, services: list[str], one) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """(results, errors) of `one` over services, concurrently, without raising."""
    try:
        return broker.many(services, one), {}
    except BatchError as err:
        return err.results, err.errors


def _worst_exit(errors: dict[str, BaseException]) -> int:
    return int(most_pressing(getattr(e, "exit_code", ExitCode.ERROR) for e in errors.values()))


# -- token / header / exec ------------------------------------------------------------------


class WaitDisplay:
    """What a person or an agent sees while we wait: links, and a countdown on a terminal.

    --json: one JSON line on stdout per new link (an agent forwards each to chat).
    Terminal: the link, then a one-line countdown redrawn on stderr.
    Otherwise: one line on stderr per link.
    """

    def __init__(self, service: str, identifier: str | None, as_json: bool) -> None:
        self.service = service
        self.identifier = identifier
        self.as_json = as_json
        self.live = not as_json and sys.stderr.isatty()
        self._drawn = False

    def on_link(self, link: str, expires_at: _dt.datetime | None) -> None:
        if self.as_json:
            obj = {
                "service": self.service,
                "identifier": self.identifier,
                "status": "WAITING",
                "link": link,
                "expires_at": iso(expires_at),
            }
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
            return
        from .display import expiry_phrase

        self.clear()
        say(f"Open this link to connect {self.service} ({expiry_phrase(expires_at)}):")
        say(f"  {paint(link, 'bold', sys.stderr)}")

    def on_status(self, status: str) -> None:
        """A new account status while waiting (PENDING_VERIFICATION: consent given, verification pending)."""
        from .display import describe_status

        if self.as_json:
            obj = {"service": self.service, "identifier": self.identifier, "status": status}
            obj["message"] = f"The {self.service} account {describe_status(status)}."
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
            return
        self.clear()
        say(f"The {self.service} account {describe_status(status)}.")

    def on_tick(self, link_left: float, total_left: float) -> None:
        if not self.live:
            return
        minutes, seconds = divmod(int(max(total_left, 0)), 60)
        line = (
            f"Waiting for you to authorize {self.service}: link valid {max(int(link_left), 0)} s more, "
            f"giving up in {minutes}:{seconds:02d} (Ctrl-C to stop)"
        )
        sys.stderr.write("\r\033[K" + paint(line, "dim", sys.stderr))
        sys.stderr.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._drawn = False


def _wait(args: argparse.Namespace, broker: TokenBroker, service: str, first: AuthorizationError | None, **kw):
    from .waiting import wait_for_credentials

    display = WaitDisplay(service, first.identifier if first else args.identifier, args.json)
    try:
        return wait_for_credentials(
            broker,
            service,
            args.identifier,
            args.timeout,
            display.on_link,
            on_tick=display.on_tick,
            first=first,
            on_status=display.on_status,
            **kw,
        )
    finally:
        display.clear()


def _credentials_waiting(args: argparse.Namespace, broker: TokenBroker) -> list[Any]:
    """--wait: fetch all; then wait, one service after another, for those needing authorization."""
    import time

    deadline = time.monotonic() + args.timeout
    results, errors = _batch(broker, args.services, lambda s: broker.get_credentials(s, args.identifier))
    if any(not isinstance(err, AuthorizationError) for err in errors.values()):
        # Something no authorization can fix: say so now (with every failure), not after the wait.
        raise BatchError(results, errors) if len(args.services) > 1 else next(iter(errors.values()))
    for service in dict.fromkeys(args.services):
        err = errors.get(service)
        if isinstance(err, AuthorizationError):
            args.timeout = max(deadline - time.monotonic(), 0.001)
            results[service] = _wait(args, broker, service, err)
            del errors[service]
    if errors:
        raise BatchError(results, errors) if len(args.services) > 1 else next(iter(errors.values()))
    return [results[s] for s in dict.fromkeys(args.services)]


def cmd_token(args: argparse.Namespace, road: Road) -> int:
    """One token per line, in the order asked; all or nothing. --json: one object per line."""
    broker = road.broker
    if getattr(args, "wait", None) is not None:
        args.timeout = args.wait
        creds = _credentials_waiting(args, broker)
        if args.json:
            for c in creds:
                obj = {
                    "service": c.service,
                    "identifier": c.identifier,
                    "status": "ACTIVE",
                    "token": c.token,
                    "expires_at": iso(c.expires_at),
                }
                sys.stdout.write(json.dumps(obj) + "\n")
        else:
            sys.stdout.write("".join(c.token + "\n" for c in creds))
        sys.stdout.flush()
        return ExitCode.OK
    if getattr(args, "json", False):
        return _token_json(args, road)
    if len(args.services) == 1:
        tokens = [road.token(args.services[0], args.identifier)]
    else:
        tokens = list(road.tokens(args.services, args.identifier).values())
    sys.stdout.write("".join(token + "\n" for token in tokens))
    sys.stdout.flush()
    return ExitCode.OK


def _token_json(args: argparse.Namespace, road: Road) -> int:
    broker = road.broker
    results, errors = _batch(broker, args.services, lambda s: road.credentials([s], args.identifier)[0])
    for service in dict.fromkeys(args.services):
        if service in results:
            creds = results[service]
            obj: dict[str, Any] = {
                "service": service,
                "identifier": creds.identifier,
                "status": "ACTIVE",
                "token": creds.token,
                "expires_at": iso(creds.expires_at),
            }
        else:
            err = errors[service]
            obj = {"service": service, "identifier": _identifier_of(broker, service, args.identifier, err)}
            if isinstance(err, AuthorizationError):
                obj.update(status=err.status or "NOT_CONNECTED", link=err.link, expires_at=iso(err.expires_at))
            else:
                obj.update(
                    status="ERROR",
                    error={
                        "type": err.__class__.__name__,
                        "message": str(err) if isinstance(err, ScalekitAuthError) else "unexpected error",
                        "exit_code": int(getattr(err, "exit_code", ExitCode.ERROR)),
                    },
                )
        sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    return int(ExitCode.OK) if not errors else _worst_exit(errors)


def _identifier_of(broker: TokenBroker, service: str, identifier: str | None, err: BaseException) -> str | None:
    if isinstance(err, AuthorizationError):
        return err.identifier
    try:
        return broker.resolve(service, identifier).identifier
    except ScalekitAuthError:
        return identifier


def cmd_auth(args: argparse.Namespace, road: Road) -> int:
    """Print a fresh link and wait until the user has authorized (never prints the token)."""
    broker = road.broker
    if not args.force:
        try:
            creds = broker.get_credentials(args.service, args.identifier)
        except AuthorizationError as err:
            creds = _wait(args, broker, args.service, err)
        else:
            say(f"{creds.service} is already connected for '{creds.identifier}' (use --force to authorize again).")
    else:
        creds = _wait(args, broker, args.service, None, force_link=True)
    if args.json:
        obj = {"service": creds.service, "identifier": creds.identifier, "status": "ACTIVE"}
        sys.stdout.write(json.dumps({**obj, "expires_at": iso(creds.expires_at)}) + "\n")
        sys.stdout.flush()
    else:
        say(paint(f"{creds.service} is connected for '{creds.identifier}'.", "green", sys.stderr))
    return ExitCode.OK


def cmd_header(args: argparse.Namespace, road: Road) -> int:
    """`Authorization: Bearer <token>`, for `curl -H @-` (keeps the token out of argv)."""
    token = road.token(args.service, args.identifier)
    sys.stdout.write(f"Authorization: Bearer {token}\n")
    sys.stdout.flush()
    return ExitCode.OK


def cmd_exec(args: argparse.Namespace, road: Road) -> int:
    """Run CMD with tokens in environment variables (never in argv); the exit code is CMD's."""
    from .execenv import env_names, exec_with

    if not args.cmd:
        raise ConfigurationError(f"exec needs a command after '--', e.g. {command('exec gmail -- python3 app.py')}")
    names = env_names(list(dict.fromkeys(args.services)), args.env or [])
    services = list(names)
    if len(services) == 1:  # one service: its own error, not a batch of one
        tokens = {services[0]: road.token(services[0], args.identifier)}
    else:
        tokens = road.tokens(services, args.identifier)
    road.close()
    return exec_with(args.cmd, {names[service]: token for service, token in tokens.items()})


def _header_pipe(header: bytes) -> int:
    """A pipe curl reads the header from (inheritable read end), holding all of `header` before
    curl starts: never in argv or a file. A header larger than the pipe's buffer would block the
    write before curl runs, so the buffer is grown first (Linux); where it cannot be, a forked
    writer feeds it while curl reads."""
    import fcntl

    read_fd, write_fd = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    room = 0
    if set_size is not None:
        try:
            room = fcntl.fcntl(write_fd, set_size, max(len(header) + 4096, 65536))
        except OSError:
            room = 0
    if room > len(header) or len(header) <= 512:  # POSIX guarantees PIPE_BUF (512) at the least
        os.write(write_fd, header)
        os.close(write_fd)
    elif os.fork() == 0:  # pragma: no cover - the child only writes and leaves
        try:
            os.close(read_fd)
            view = memoryview(header)
            while view:
                view = view[os.write(write_fd, view) :]
        finally:
            os._exit(0)
    else:
        os.close(write_fd)
    os.set_inheritable(read_fd, True)
    return read_fd


def cmd_request(args: argparse.Namespace, road: Road) -> int:
    """[METHOD] URL: the API's answer on stdout, the status on stderr; never the token."""
    from .request import METHODS, api_request, check_header, pairs, read_body_argument

    words = list(args.words)
    if len(words) == 2 and words[0].upper() in METHODS:
        method, url = words[0].upper(), words[1]
    elif len(words) == 1:
        method, url = "GET", words[0]
    else:
        raise UsageError(f"expected [METHOD] URL, e.g. request POST https://..., got {len(words)} words.")
    proxied = (args.via or os.environ.get("SCALEKIT_REQUEST_VIA", "")).strip().lower() == "scalekit"
    if "://" not in url and not (proxied and url.startswith("/")):
        raise UsageError(
            f"{printable(url, False)!r} is not a full URL: give it with https:// (a path only with --via scalekit)."
        )
    headers = dict(check_header(h) for h in args.header or [])
    body: dict[str, Any] = {}
    if args.json_body is not None:
        raw = read_body_argument(args.json_body, "--json")
        try:
            json.loads(raw)
        except ValueError:
            raise UsageError("--json: the body is not valid JSON.") from None
        body["json"] = raw
    if args.data is not None:
        body["data"] = read_body_argument(args.data, "--data")
    if args.form:
        body["form"] = pairs(args.form, "--form")
    if args.max_bytes <= 0:
        raise UsageError("--max-bytes must be a positive number of bytes.")
    response = api_request(
        url,
        method=method,
        service=args.service,
        identifier=args.identifier,
        headers=headers,
        query=pairs(args.query or [], "--query"),
        max_bytes=args.max_bytes,
        output=args.output,
        timeout=args.timeout,
        via=args.via,
        road=road,
        **body,
    )
    status = f"HTTP {response.status} {response.reason}".rstrip()
    if args.json_out:
        sys.stdout.write(json.dumps(response.envelope()) + "\n")
    else:
        out = sys.stdout.buffer
        if args.include:
            tty = sys.stdout.isatty()  # a terminal gets no raw escape sequence from the host
            out.write((printable(status, False) if tty else status).encode("latin-1", "replace") + b"\r\n")
            for name, value in response.headers.items():
                line = f"{name}: {value}"
                out.write((printable(line, False) if tty else line).encode("latin-1", "replace") + b"\r\n")
            out.write(b"\r\n")
        body_bytes = response.body
        if body_bytes and sys.stdout.isatty():
            body_bytes = printable(response.text).encode()  # a terminal gets no raw escape sequences
        out.write(body_bytes)
        out.flush()
    where = f"; saved to {response.saved_to}" if response.saved_to else ""
    cut = f"; body cut at {args.max_bytes} bytes (use --output FILE for all of it)" if response.truncated else ""
    say(f"{status} from {response.service}{where}{cut}")
    if response.status in (301, 302, 303, 307, 308) and "location" in response.headers:
        say(f"redirected to {response.headers['location']} (not followed: the token stays with {response.service})")
    sys.stdout.flush()
    return ExitCode.OK if response.ok else ExitCode.HTTP_ERROR


def cmd_mcp(args: argparse.Namespace, road: Road) -> int:
    """The MCP server on stdio (see mcp_server.py); it makes its own long-lived road."""
    from .bootstrap import import_or_explain

    import_or_explain("mcp", "mcp")
    from .mcp_server import serve

    return serve()


def cmd_tools(args: argparse.Namespace, road: Road) -> int:
    """Scalekit's tools per service: name and description (with --json, the input schema)."""
    broker = road.broker
    services = [args.service] if args.service else sorted(broker.connections())
    if not services:
        say(NO_SERVICES.format(broker.connections_file, command("config", "gmail", "<connection_name>")))
        return ExitCode.CONFIGURATION
    found = {s: broker.list_tools(s, args.identifier, args.query or "") for s in services}
    if args.json:
        sys.stdout.write(json.dumps([{"service": s, **tool} for s, tools in found.items() for tool in tools]) + "\n")
    else:
        rows = [[s, t["name"], (t.get("description") or "").split("\n")[0][:80]] for s, ts in found.items() for t in ts]
        sys.stdout.write(table(rows, ["SERVICE", "TOOL", "DESCRIPTION"]) if rows else "")
        if not rows:
            say("Scalekit offers no tools for " + ", ".join(services) + ".")
    sys.stdout.flush()
    return ExitCode.OK


def cmd_tool(args: argparse.Namespace, road: Road) -> int:
    """tool run NAME: the tool's result as JSON on stdout."""
    from .request import read_body_argument

    broker = road.broker
    raw = read_body_argument(args.input, "--input")
    try:
        tool_input = json.loads(raw)
    except ValueError:
        raise UsageError("--input: not valid JSON (give a JSON object, e.g. --input '{}').") from None
    if not isinstance(tool_input, dict):
        raise UsageError("--input: the tool's arguments must be a JSON object, e.g. --input '{}'.")
    service = args.service
    if service is None:
        prefix = args.name.split("_", 1)[0].lower()
        if prefix not in broker.connections():
            raise UsageError(f"Which service runs {printable(args.name, False)}? Add --service NAME.")
        service = prefix
    result = broker.execute_tool(service, args.identifier, args.name, tool_input)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return ExitCode.OK


def cmd_which(args: argparse.Namespace, road: Road) -> int:
    """Print the service a URL belongs to."""
    broker = road.broker
    print(broker.service_for_url_or_explain(args.url))
    return ExitCode.OK


def cmd_curl(args: argparse.Namespace, road: Road) -> int:
    """curl URL with the Authorization header read from a pipe: never in argv, never on disk."""
    broker = road.broker
    import shutil

    from .curlargs import check_curl_args

    curl = shutil.which("curl")
    if curl is None:
        raise ConfigurationError("curl is not installed (e.g. apt-get install curl).")
    check_curl_args(args.curl_args, curl)  # before any token exists: one URL, no rerouting options
    target = broker.url_target(args.url)  # the URL rule (services.check_url); curl gets target.url
    service = broker.explain_unknown(target) if not args.service else args.service
    if args.service and target.service != normalize_service(args.service):
        raise ConfigurationError(
            f"{printable(target.host, False)} is not a known host of {args.service}, so its token is not "
            f"sent there. If it is one, add it to that service in connections.json: "
            f'"hosts": ["{printable(target.host, False)}"].'
        )
    token = road.token(service, args.identifier)
    header = f"Authorization: Bearer {token}\n".encode()
    read_fd = _header_pipe(header)
    # -q first: no ~/.curlrc. After the user's options, where nothing can undo them: --globoff (curl
    # would expand {a,b} and [1-2] into several hosts) and --noproxy '*' (straight to the URL's host).
    argv = [curl, "-q", "-H", f"@/dev/fd/{read_fd}", *args.curl_args, "--globoff", "--noproxy", "*", "--", target.url]
    from .execenv import child_environment

    env = {k: v for k, v in child_environment().items() if not k.lower().endswith("_proxy")}
    road.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(curl, argv, env)  # noqa: S606 - replaces this process: curl's exit code is ours
    return ExitCode.ERROR  # pragma: no cover


# -- config / remove / list / status ---------------------------------------------------------


def _stdin_is_a_terminal() -> bool:
    return sys.stdin is not None and hasattr(sys.stdin, "isatty") and sys.stdin.isatty()


def _facts(conn: AppConnection) -> str:
    """`GMAIL, COMPLETED, USER` (and `disabled`): what tells two connections apart."""
    facts = [conn.provider or "provider unknown", conn.status or "status unknown", conn.auth_mode or "mode unknown"]
    return ", ".join(facts + ([] if conn.enabled else ["disabled"]))


def _some(conns: list[AppConnection], limit: int = 12) -> str:
    """`a (GMAIL), b (SLACK)`, at most `limit` of them."""
    shown = ", ".join(f"{c.name} ({c.provider or '?'})" for c in conns[:limit])
    more = len(conns) - limit
    return shown + (f", and {more} more ({command('connections')} lists them all)" if more > 0 else "")


def _note_if_unusable(conn: AppConnection) -> None:
    """A connection whose set-up is not finished (DRAFT, IN_PROGRESS) or that is switched off."""
    unfinished = [conn.status] if conn.status not in ("COMPLETED", "") else []
    state = " and ".join(unfinished + ([] if conn.enabled else ["disabled"]))
    if state:
        say(
            f"note: {conn.name} is {state} in the Scalekit dashboard: finish its set-up there (AgentKit > "
            "Connections) before connecting an account."
        )


def _choose(args: argparse.Namespace, service: str, found: ConnectionMatches) -> AppConnection | None:
    """One of several candidates: picked by number on a terminal; else listed for the user (with
    --json as JSON on stdout for an agent to relay) and None."""
    matches = found.matches
    head = (
        f"Scalekit has no {found.provider} connection; near matches for {service}:"
        if found.near
        else f"Scalekit has {len(matches)} {service} connections:"
    )
    if args.json or not _stdin_is_a_terminal():
        if args.json:
            answer = {
                "service": service,
                "saved": False,
                "provider": found.provider,
                "near": found.near,
                "candidates": [c.as_dict() for c in matches],
            }
            sys.stdout.write(json.dumps(answer) + "\n")
        say(head + " " + "; ".join(f"{c.name} ({_facts(c)})" for c in matches) + ".")
        say(f"Nothing saved. Ask which one, then run: {command('config', service, '<connection_name>')}")
        return None
    say(head)
    for number, conn in enumerate(matches, 1):
        say(f"  {number}. {conn.name} ({_facts(conn)})")
    for _ in range(3):
        sys.stderr.write(f"Which one should {service} use? [1-{len(matches)}, Enter to cancel]: ")
        sys.stderr.flush()
        line = sys.stdin.readline().strip()
        if not line:
            break
        if line.isdigit() and 1 <= int(line) <= len(matches):
            return matches[int(line) - 1]
        say(f"Type a number from 1 to {len(matches)}, or press Enter to cancel.")
    say("Nothing saved.")
    return None


def cmd_config(args: argparse.Namespace, road: Road) -> int:
    """Register SERVICE -> connection: the name given (checked at Scalekit unless --offline), or
    the one Scalekit has for the service (several: the user chooses)."""
    from .connections import check_connection_name, check_identifier
    from .services import provider_key

    broker = road.broker
    service = normalize_service(args.service)
    if args.identifier is not None:
        check_identifier(args.identifier)
    name = check_connection_name(args.connection_name) if args.connection_name is not None else None
    broker.connections()  # a broken connections.json is said before Scalekit is asked anything
    if args.offline and name is None:
        raise UsageError(
            "config --offline needs the connection name: "
            f"{command('config', service, '<connection_name>', '--offline')}"
        )
    conn: AppConnection | None = None
    if not args.offline:
        hint = (
            f" To save the name without checking it: {command('config', service, name or '<connection_name>')} "
            "--offline"
        )
        try:
            if name is None:
                found = broker.find_connections(service)
            else:
                conn, listed = broker.check_connection(name)
        except ScalekitAuthError as err:
            err.args = (f"{str(err).rstrip()}{hint}",)
            raise
        if name is None:
            if not found.matches:
                if args.json:
                    answer = {
                        "service": service,
                        "saved": False,
                        "provider": found.provider,
                        "candidates": [],
                        "connections": [c.as_dict() for c in found.listed],
                    }
                    sys.stdout.write(json.dumps(answer) + "\n")
                exists = f" It has: {_some(found.listed)}." if found.listed else " It has no connections yet."
                raise ConfigurationError(
                    f"Scalekit has no {service} connection (provider {found.provider or '?'}).{exists} Create one in "
                    f"the Scalekit dashboard (AgentKit > Connections), then run: {command('config', service)}"
                )
            if len(found.matches) == 1 and not found.near:
                conn = found.matches[0]
                say(f"found one {service} connection at Scalekit: {conn.name} ({_facts(conn)})")
            else:
                conn = _choose(args, service, found)
                if conn is None:
                    return ExitCode.CHOICE_NEEDED
            name = conn.name
        elif conn is None:
            key = provider_key(service)
            theirs = [c for c in listed if c.provider == key]
            if args.json:
                answer = {
                    "service": service,
                    "saved": False,
                    "provider": key,
                    "candidates": [c.as_dict() for c in theirs],
                    "connections": [c.as_dict() for c in listed],
                }
                sys.stdout.write(json.dumps(answer) + "\n")
            if theirs:
                exists = f"Its {service} connections: {_some(theirs)}."
            elif listed:
                exists = f"Its connections: {_some(listed)}."
            else:
                exists = "It has no connections yet: create one in the Scalekit dashboard (AgentKit > Connections)."
            raise ConfigurationError(
                f"Scalekit has no connection named '{name}'. {exists} Nothing saved; to save the name anyway: "
                f"{command('config', service, name, '--offline')}"
            )
        elif conn.provider and conn.provider != provider_key(service):
            say(f"note: {conn.name} is a {conn.provider} connection; saved for {service} as asked.")
    assert name is not None
    if conn is not None:
        _note_if_unusable(conn)
    change = broker.configure_connection(service, name, args.identifier)
    say(f"{change.describe()} in {broker.connections_file}")
    if args.json:
        answer = {
            "service": service,
            "saved": True,
            "connection_name": name,
            "change": change.describe(),
            "connection": conn.as_dict() if conn is not None else None,
        }
        sys.stdout.write(json.dumps(answer) + "\n")
    return ExitCode.OK


def cmd_connections(args: argparse.Namespace, road: Road) -> int:
    """The environment's connections at Scalekit: name, provider, status, auth mode, and which
    configured service uses each."""
    broker = road.broker
    found = broker.app_connections(args.provider.upper() if args.provider else None, args.query)
    used: dict[str, list[str]] = {}
    try:
        for service, entry in broker.connections().items():
            used.setdefault(entry.connection_name, []).append(service)
    except ConfigurationError:
        pass  # a broken connections.json: the listing still answers
    if args.json:
        sys.stdout.write(json.dumps([{**c.as_dict(), "services": used.get(c.name, [])} for c in found]) + "\n")
        return ExitCode.OK
    if not found:
        filtered = " matching that" if args.provider or args.query else ""
        say(f"Scalekit has no connections{filtered}. Create one in the Scalekit dashboard (AgentKit > Connections).")
        return ExitCode.OK
    rows = [
        [
            c.name,
            c.provider or "-",
            (c.status or "-") + ("" if c.enabled else " (disabled)"),
            c.auth_mode or "-",
            ", ".join(used.get(c.name, [])) or "-",
        ]
        for c in found
    ]
    sys.stdout.write(table(rows, ["NAME", "PROVIDER", "STATUS", "AUTH MODE", "SERVICE"]))
    return ExitCode.OK


def cmd_remove(args: argparse.Namespace, road: Road) -> int:
    broker = road.broker
    change = broker.remove_connection(args.service)
    say(f"{change.describe()} in {broker.connections_file}")
    if change.before is not None:
        back = f"{change.service} {change.before.connection_name}"
        if change.before.identifier:
            back += f" -i {change.before.identifier}"
        say(
            "remove only forgets the name here: a connected account stays connected at Scalekit. To revoke it, put "
            f"the entry back ({command('config', back, '--offline')}) and run: "
            f"{command('disconnect', change.service)}"
        )
    return ExitCode.OK


def cmd_disconnect(args: argparse.Namespace, road: Road) -> int:
    """Revoke SERVICE's connected account at Scalekit (asking first on a terminal), and forget its
    token here and in a running agent. connections.json keeps the entry."""
    broker = road.broker
    target = broker.resolve(args.service, args.identifier)
    who = f"the {target.service} account of '{target.identifier}' (connection {target.connection_name})"
    if not args.yes:
        if not _stdin_is_a_terminal():
            raise UsageError(f"disconnect revokes {who} at Scalekit: add --yes to confirm (no terminal to ask on).")
        sys.stderr.write(safe(f"Revoke {who} at Scalekit? The user must authorize it again to use it. [y/N]: "))
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            say("Nothing changed.")
            return ExitCode.ERROR
    revoked = broker.disconnect(target.service, target.identifier)
    road.invalidate(target.service, target.identifier)
    if revoked:
        say(
            f"revoked {who} at Scalekit. connections.json still maps {target.service} -> {target.connection_name} "
            f"({command('remove', target.service)} forgets it); to connect again: {command('auth', target.service)}"
        )
    else:
        say(
            f"Scalekit has no {target.service} account for '{target.identifier}' on connection "
            f"{target.connection_name}: nothing to revoke (already disconnected, or never connected)."
        )
    return ExitCode.OK


def _rows(broker: TokenBroker) -> list[dict[str, Any]]:
    entries = broker.connections()
    rows = []
    for service, entry in entries.items():
        target = broker.resolve(service)
        rows.append(
            {
                "service": service,
                "connection_name": entry.connection_name,
                "identifier": target.identifier,
                "identifier_source": target.identifier_source,
            }
        )
    return rows


def _statuses(broker: TokenBroker, services: list[str]) -> tuple[dict[str, AccountStatus], dict[str, BaseException]]:
    """(statuses, errors): one account listing per identifier and 20 connections, not one lookup each."""
    try:
        return broker.account_statuses(services), {}
    except BatchError as err:
        return err.results, err.errors


NO_SERVICES = "No services configured in {}. Add one: {}"


def cmd_list(args: argparse.Namespace, road: Road) -> int:
    broker = road.broker
    rows = _rows(broker)
    if not rows:
        if args.json:
            sys.stdout.write("[]\n")
        say(NO_SERVICES.format(broker.connections_file, command("config", "gmail", "<connection_name>")))
        return ExitCode.OK
    errors: dict[str, BaseException] = {}
    if args.status:
        found, errors = _statuses(broker, [r["service"] for r in rows])
        for row in rows:
            st = found.get(row["service"])
            if st is not None:
                row["status"] = st.status or "NOT_CONNECTED"
                row["token_expires_at"] = iso(st.expires_at)
            else:
                row["status"] = "ERROR"
                row["token_expires_at"] = None
        for message in dict.fromkeys(str(e) for e in errors.values()):
            say(f"scalekit-auth: {message}")
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        header = ["SERVICE", "CONNECTION", "IDENTIFIER"] + (["STATUS", "TOKEN EXPIRES"] if args.status else [])
        body = []
        for r in rows:
            ident = r["identifier"] + ("" if r["identifier_source"] in ("connections.json",) else " (default)")
            line = [r["service"], r["connection_name"], ident]
            if args.status:
                exp = (
                    _dt.datetime.fromisoformat(r["token_expires_at"].replace("Z", "+00:00"))
                    if r["token_expires_at"]
                    else None
                )
                line += [r["status"], in_words(exp) if r["status"] == "ACTIVE" else ""]
            body.append(line)
        sys.stdout.write(table(body, header))
    return int(ExitCode.OK) if not errors else _worst_exit(errors)


def cmd_status(args: argparse.Namespace, road: Road) -> int:
    """One line per service: configured? account status? token expiry? Never the token."""
    broker = road.broker
    configured = broker.connections()
    services = [s.strip().lower() for s in args.services] if args.services else list(configured)
    if not services:
        say(NO_SERVICES.format(broker.connections_file, command("config", "gmail", "<connection_name>")))
        return ExitCode.CONFIGURATION
    known = [s for s in services if s in configured]
    found, errors = _statuses(broker, known) if known else ({}, {})
    width = max(len(s) for s in services)
    lines: list[tuple[str, str, str, str]] = []  # (service, label, color, rest)
    codes: set[int] = set()
    for service in services:
        if service not in configured:
            lines.append((service, "NOT_CONFIGURED", "red", f"run: {command('config', service, '<connection_name>')}"))
            codes.add(int(ExitCode.CONFIGURATION))
            continue
        entry = configured[service]
        if service in errors:
            err = errors[service]
            lines.append((service, "ERROR", "red", f"{entry.connection_name}: {err}"))
            codes.add(int(getattr(err, "exit_code", ExitCode.ERROR)))
            continue
        st = found[service]
        where = f"{entry.connection_name} / {st.target.identifier}"
        if st.status == "ACTIVE":
            expiry = in_words(st.expires_at)
            lines.append((service, "ACTIVE", "green", where + (f"  token expires {expiry}" if expiry else "")))
        else:
            lines.append(
                (
                    service,
                    st.status or "NOT_CONNECTED",
                    "yellow",
                    f"{where}  needs authorization (run: {command('token', service)})",
                )
            )
            codes.add(int(ExitCode.AUTHORIZATION_REQUIRED))
    label_width = max(len(line[1]) for line in lines)
    for service, label, color, rest in lines:
        service, rest = printable(service, False), printable(rest, False)  # names come from files
        print(f"{service.ljust(width)}  {paint(label.ljust(label_width), color)}  {rest}")
    sys.stdout.flush()
    if not codes:
        return ExitCode.OK
    return int(most_pressing(codes))


def cmd_doctor(args: argparse.Namespace, road: Road) -> int:
    broker = road.broker
    from .doctor import run_checks
    from .errors import most_pressing

    failed = []
    for check in run_checks(broker):
        label = {"ok": paint("ok  ", "green"), "warn": paint("warn", "yellow"), "fail": paint("fail", "red")}[
            check.level
        ]
        line = f"{label}  {check.name}: {check.detail}"
        if check.fix and check.level != "ok":
            line += f" -> {check.fix}"
        print(line)
        if check.level == "fail":
            failed.append(check.exit_code)
    sys.stdout.flush()
    return int(most_pressing(failed)) if failed else 0


def cmd_verify(args: argparse.Namespace, road: Road) -> int:
    """Complete a custom user verification from the address the browser ended on (paste-back)."""
    broker = road.broker
    from .verify_server import auth_request_id_of

    auth_request_id = auth_request_id_of(args.address)
    if args.identifier is not None:
        identifier = args.identifier
    elif args.service:
        identifier = broker.resolve(args.service).identifier
    else:
        identifier = broker.default_identifier()
    broker.verify_user(auth_request_id, identifier)
    if args.json:
        sys.stdout.write(json.dumps({"identifier": identifier, "status": "VERIFIED"}) + "\n")
        sys.stdout.flush()
    else:
        say(paint(f"Verified: the account for '{identifier}' is connected.", "green", sys.stderr))
    return ExitCode.OK


def cmd_migrate(args: argparse.Namespace, road: Road) -> int:
    """Move the user's files into the state folder they belong in: from the config folder into
    OpenClaw's (when they were saved there before OpenClaw was installed), and from the skill
    folder (original layout). First removes what an interrupted migrate left behind."""
    broker = road.broker
    from pathlib import Path

    from . import paths
    from .migrate import move_folder, move_state, remove_leftovers

    env = broker.environ
    removed = []
    places = (paths.state_dir(env), paths.config_state_dir(env), paths.openclaw_skill_state_dir(env))
    for place in dict.fromkeys(places):  # temporary copies (of .env too) an interrupted migrate left
        removed += remove_leftovers(Path(place))
    removed += remove_leftovers(Path(paths.openclaw_state_dir(env)), folders=True)
    for path in removed:
        say(f"removed {path} (left by an interrupted migrate)")
    moved = []
    folder, why = paths.state_choice(env)
    if why == paths.KEPT_CONFIG_FOLDER:
        moved += move_folder(Path(folder), Path(paths.openclaw_skill_state_dir(env)))
    target = Path(paths.state_dir(env))
    legacy = paths.legacy_dir()
    if legacy is not None:
        moved += move_state(Path(legacy), target)
    earlier = [item for item in moved if item.outcome == "earlier"]
    moved = [item for item in moved if item.outcome != "earlier"]
    if not moved:
        if earlier:
            listed = " and ".join(str(item.source) for item in earlier)
            where = (
                f"{listed} {'was' if len(earlier) == 1 else 'were'} moved by an earlier migrate (the old "
                f"{'copy is' if len(earlier) == 1 else 'copies are'} in a read-only folder and no longer read)"
            )
        elif legacy is None:
            where = "this copy of scalekit-auth is not in a skill folder"
        else:
            where = f"{legacy} holds no .env or connections.json"
        say(f"Nothing to move: {where}. Files live in {target}.")
        return ExitCode.OK
    for item in moved:
        mode = f"mode {item.target.stat().st_mode & 0o777:03o}"
        if item.outcome == "moved":
            say(f"moved {item.source} -> {item.target} ({mode})")
        elif item.outcome == "same":
            say(f"{item.target} already held the same content; removed {item.source}")
        else:
            say(
                f"copied {item.source} -> {item.target} ({mode}); the old copy could not be removed (read-only "
                "folder) and is no longer read"
            )
    return ExitCode.OK


def cmd_agent(args: argparse.Namespace, road: Road) -> int:
    """agent start|stop|status."""
    from . import agent

    info: dict | None  # the agent's answer; None when no agent is running
    if args.action == "start":
        info, started = agent.start(args.idle_timeout)
        minutes = info["idle_timeout"] / 60
        verb = "started" if started else "already running"
        say(f"agent {verb} (pid {info['pid']}, socket {info['socket']}, exits after {minutes:g} min idle)")
        return ExitCode.OK
    if args.action == "stop":
        stopped = agent.stop()
        say(f"agent stopped (pid {stopped['pid']}); its cache is gone." if stopped else "no agent is running")
        return ExitCode.OK
    from .agent_client import AgentNotAnsweringError

    try:
        info = agent.status()
    except AgentNotAnsweringError as err:
        if args.json:
            sys.stdout.write(
                json.dumps({"running": True, "answering": False, "pid": err.pid, "socket": err.path}) + "\n"
            )
        say(str(err))
        return int(ExitCode.ERROR)
    if args.json:
        sys.stdout.write(json.dumps({"running": info is not None, **(info or {})}) + "\n")
    elif info is None:
        from .paths import agent_enabled

        say(
            "no agent is running for this state folder; "
            + (
                "the next shell call (get_token.py, token, header, exec) starts one"
                if agent_enabled()
                else "SCALEKIT_AUTH_AGENT=0: shell calls do everything themselves"
            )
        )
    else:
        up = time.time() - info["started_at"]
        cache = info["cache"]
        how = "by the first shell call" if info.get("started_by") == "auto" else "by `agent start`"
        print(
            f"running  pid {info['pid']}  started {how}  up {up / 60:.0f} min  idle {info['idle_for']:.0f} s "
            f"(exits after {info['idle_timeout'] / 60:g} min idle)  cached tokens {cache['entries']}, "
            f"hits {cache['hits']}, lookups {cache['misses']}\nsocket   {info['socket']}"
            + (
                ""
                if info["context_matches"]
                else "\nnote     it was started with different settings; this shell does not use it"
            )
        )
    return int(ExitCode.OK if info is not None else ExitCode.ERROR)


def cmd_demo(args: argparse.Namespace, road: Road) -> int:
    from .demo import run_demo

    return run_demo(service=args.service, browser=args.browser, timeout=args.timeout)
