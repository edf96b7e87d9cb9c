"""The `scalekit-auth` command line (and `get_token.py`, which is `scalekit-auth token`).

argparse (standard library) rather than click: it adds nothing to start-up, so `--help`,
`config`, `list` and `remove` answer in tens of milliseconds without importing any
third-party package; the Scalekit SDK is imported only by commands that need a token.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

from .errors import ExitCode, ScalekitAuthError

PROG = "scalekit-auth"
VERSION_HELP = "print the version and exit"
DEBUG_VAR = "SCALEKIT_AUTH_DEBUG"

#: What each exit code means: the `exit codes:` section of every --help, from ExitCode plus exec's
#: shell codes; the README's table says the same first (tests/test_help.py compares all three).
EXIT_CODE_MEANINGS: dict[int, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "unexpected error (run again with --debug)",
    ExitCode.USAGE: "bad command-line usage",
    ExitCode.CONFIGURATION: "configuration problem",
    ExitCode.AUTHORIZATION_REQUIRED: "authorization needed (the link is on stderr)",
    ExitCode.UNAVAILABLE: "Scalekit unreachable or timed out",
    ExitCode.CREDENTIALS_REJECTED: "Scalekit rejected the client credentials",
    ExitCode.RATE_LIMITED: "rate-limited by Scalekit",
    ExitCode.UNSUPPORTED_ACCOUNT: "account has no single token (use get_credentials)",
    ExitCode.UNSAFE_CREDENTIAL: (
        "Scalekit returned an unsafe token or field (control characters, or over 64 KiB): never printed"
    ),
    ExitCode.PROXY_DISABLED: "Scalekit's API proxy is not enabled for the connection",
    ExitCode.HTTP_ERROR: "request: the API answered with a status other than 2xx",
    ExitCode.CHOICE_NEEDED: "config SERVICE: several connections match; nothing saved",
    126: "exec: the command cannot be run (as in a shell)",
    127: "exec: the command was not found (as in a shell)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_codes_help() -> str:
    """The `exit codes:` section: every code, one per line, in numeric order."""
    lines = [f"  {int(code):>3}  {meaning}" for code, meaning in sorted(EXIT_CODE_MEANINGS.items())]
    return "exit codes:\n" + "\n".join(lines) + "\n"


SHELL_EXAMPLES = """\
examples:
  TOKEN=$({prog} gmail)
  {prog} gmail --identifier alice
  {{ read -r GMAIL; read -r SLACK; }} < <({prog} gmail slack)   # one token per line, in order
  {prog} gmail slack --json                                 # one JSON object per service
  {prog} gmail --wait 120                                   # show the link, wait for the user
"""

TOP_EXAMPLES = """\
examples:
  {prog} config gmail gmail_u3134a
  TOKEN=$({prog} token gmail)
  {prog} header gmail | curl -H @- https://gmail.googleapis.com/gmail/v1/users/me/messages
  {prog} exec github -- gh repo list
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument quoted back in an error shows its control characters escaped; a
    parser with commands keeps them by name (`help COMMAND` prints theirs)."""

    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str):
        from .display import printable

        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {printable(message, keep_newlines=False)}\n")


def _common(top: bool = False) -> _Parser:
    """--debug, accepted before the command and after it. A subcommand's parser must not reset a
    --debug given before the command, so only the top-level parser has a default."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and debug logging on stderr",
    )
    return common


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected between 0 and 86400 seconds, got {text!r}")
    return value


class Arg(NamedTuple):
    """One argparse argument: its flags (or name) and add_argument's keywords."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


IDENTIFIER = arg("--identifier", "-i", metavar="ID", help="whose account (default: connections.json, then the agent)")
TOKEN_ARGS = (
    arg("services", nargs="+", metavar="SERVICE", help="service name(s) from connections.json, e.g. gmail"),
    IDENTIFIER,
    arg(
        "--json",
        action="store_true",
        help="one JSON object per service and line: {service, identifier, status, token | link+expires_at | error}",
    ),
    arg(
        "--wait",
        nargs="?",
        const=300.0,
        type=_seconds,
        metavar="SECONDS",
        help="if authorization is needed, show the link and wait for it (default 300 s); new links as old expire",
    ),
)


class Command(NamedTuple):
    """One subcommand: the table build_parser reads (and the order `--help` lists them in)."""

    name: str
    summary: str
    description: str
    examples: str
    args: tuple[Arg, ...] = ()
    defaults: dict[str, Any] = {}
    #: The arguments as the commands list and usage show them, when not derived from `args` well.
    synopsis: str = ""
    #: What follows the arguments in the usage line (exec: `-- CMD [ARG ...]`).
    after: str = ""


COMMANDS: tuple[Command, ...] = (
    Command(
        "request",
        "call an API with the token attached here: prints the answer, never the token",
        "Call URL with the token of the service it belongs to attached inside scalekit-auth, and print the "
        "response body on stdout (the status line on stderr). The token goes only to https URLs of that "
        "service's hosts; any copy of it (or of the client secret) in the answer is redacted. Exit code 0 for a "
        "2xx answer, 11 for any other HTTP status. This is the command for a language model: its output "
        "never holds a token.",
        "request https://gmail.googleapis.com/gmail/v1/users/me/profile\n"
        'request POST https://slack.com/api/chat.postMessage --json \'{"channel": "C1", "text": "hi"}\'\n'
        "request https://api.github.com/user/repos --query per_page=5 --json-out\n"
        "request https://www.googleapis.com/drive/v3/files/ID --query alt=media --output report.pdf",
        (
            arg("words", nargs="+", metavar="[METHOD] URL", help="HTTP method (default GET) and the full https URL"),
            arg("--service", "-s", metavar="SERVICE", help="the service whose token to use (default: from the URL)"),
            IDENTIFIER,
            arg("--json", dest="json_body", metavar="BODY|@FILE", help="JSON request body (sets Content-Type)"),
            arg("--data", metavar="TEXT|@FILE", help="raw request body"),
            arg("--form", action="append", metavar="KEY=VALUE", help="form field (repeatable)"),
            arg("-H", "--header", action="append", metavar="'NAME: VALUE'", help="request header (repeatable)"),
            arg("--query", action="append", metavar="KEY=VALUE", help="query parameter (repeatable)"),
            arg("--output", "-o", metavar="FILE", help="write the body to FILE (0600) instead of stdout, unbounded"),
            arg("--include", action="store_true", help="print the status line and headers before the body"),
            arg("--json-out", action="store_true", help="one JSON object: status, headers, body, truncated"),
            arg("--max-bytes", type=int, default=4 * 1024 * 1024, metavar="N", help="read at most N bytes (4 MiB)"),
            arg("--timeout", type=_seconds, default=60.0, metavar="SECONDS", help="for the API call (default 60)"),
            arg(
                "--via",
                choices=("local", "scalekit"),
                default=None,
                help="local (default): attach the token here; scalekit: through Scalekit's proxy, the token never "
                "leaves Scalekit (SCALEKIT_REQUEST_VIA sets the default)",
            ),
        ),
        synopsis="[METHOD] URL",
    ),
    Command(
        "tools",
        "list Scalekit's tools for a service, with their input schemas",
        "List the tools Scalekit offers for SERVICE's connection (every configured service without one): name, "
        "description and, with --json, the input schema `tool run` takes. Never a token.",
        "tools gmail\ntools gmail --query 'send email' --json",
        (
            arg("service", nargs="?", metavar="SERVICE"),
            IDENTIFIER,
            arg("--query", metavar="TEXT", help="narrow the list (3 to 100 characters)"),
            arg("--json", action="store_true", help="JSON with each tool's input schema"),
        ),
    ),
    Command(
        "tool",
        "run one of Scalekit's tools as the account: prints its result, never a token",
        "Run tool NAME through Scalekit as the service's account, with --input as its JSON arguments, and "
        "print the result as JSON. An account that is not connected gives its authorization link (exit 4).",
        "tool run gmail_get_profile --service gmail --input '{}'\n"
        "tool run gmail_fetch_mails --service gmail --input '{\"max_results\": 5}'",
        (
            arg("action", choices=("run",), help="run"),
            arg("name", metavar="NAME", help="the tool's name, from `tools SERVICE`"),
            arg(
                "--service", "-s", metavar="SERVICE", help="whose connection (default: the name's prefix, e.g. gmail_)"
            ),
            IDENTIFIER,
            arg("--input", default="{}", metavar="JSON|@FILE", help="the tool's arguments as a JSON object"),
        ),
    ),
    Command(
        "token",
        "print fresh token(s) on stdout",
        "Print a fresh access token (or API key) for each SERVICE, one per line on stdout.",
        "",
        TOKEN_ARGS,
    ),
    Command(
        "auth",
        "connect an account: print a link and wait for the user",
        "Print a fresh authorization link for SERVICE and wait until the user has authorized it, issuing a new "
        "link whenever the current one expires. On a terminal a countdown is shown; with --json each new link is "
        "one JSON line on stdout (for an agent to forward) and the last line reports ACTIVE.",
        "auth gmail\nauth gmail --identifier alice --timeout 600\nauth slack --json\nauth gmail --force",
        (
            arg("service", metavar="SERVICE"),
            IDENTIFIER,
            arg("--timeout", type=_seconds, default=300.0, help="seconds to wait before giving up (default 300)"),
            arg("--json", action="store_true", help="one JSON line per link, then one for the result"),
            arg("--force", action="store_true", help="issue a link even if the account is already connected"),
        ),
    ),
    Command(
        "header",
        "print an Authorization header line",
        "Print 'Authorization: Bearer <token>' so curl can read it from stdin: the token never appears in "
        "argv or shell history.",
        "header gmail | curl -H @- https://gmail.googleapis.com/gmail/v1/users/me/profile",
        (arg("service", metavar="SERVICE"), IDENTIFIER),
    ),
    Command(
        "exec",
        "run a command with tokens in its environment",
        "Run CMD with each SERVICE's token in an environment variable (GMAIL_TOKEN, SLACK_TOKEN, ...), never in "
        "argv. The exit code is CMD's.",
        "exec gmail -- python3 fetch_mail.py\n"
        "exec gmail slack -- ./sync.sh            # $GMAIL_TOKEN and $SLACK_TOKEN\n"
        "exec github --env GH_TOKEN -- gh repo list\n"
        "exec gmail slack --env slack=SLACK_BOT_TOKEN -- ./bot.sh",
        (
            arg("services", nargs="+", metavar="SERVICE"),
            IDENTIFIER,
            arg(
                "--env",
                action="append",
                metavar="NAME|SERVICE=NAME",
                help="variable name to use instead of SERVICE_TOKEN (repeatable)",
            ),
        ),
        {"cmd": []},
        after="-- CMD [ARG ...]",
    ),
    Command(
        "curl",
        "run curl with the right token",
        "Run curl on URL with 'Authorization: Bearer <token>' for the service the URL belongs to. curl reads the "
        "header from a pipe, so the token is never in argv, shell history or a file. Options for curl go after "
        "the URL. The exit code is curl's.",
        "curl https://gmail.googleapis.com/gmail/v1/users/me/profile\n"
        "curl https://api.github.com/user/repos -s --fail\n"
        "curl --service crm https://crm.example.com/api/v2/deals -X POST -d @deal.json",
        (
            arg("--service", "-s", help="use this service instead of detecting it from the URL"),
            IDENTIFIER,
            arg("url", metavar="URL"),
            arg("curl_args", nargs=argparse.REMAINDER, metavar="CURL ARGS", help="passed to curl"),
        ),
    ),
    Command(
        "mcp",
        "serve MCP tools (status, authorize, request) on stdio for MCP clients",
        "Run a Model Context Protocol server on stdin/stdout (the official MCP SDK) for clients such as Claude "
        "Desktop, Claude Code or Cursor. Its tools return results, never a token: status, authorize (the link, "
        "or a wait with progress) and request (an API call with the token attached here). Logs go to stderr.",
        "mcp",
    ),
    Command(
        "which",
        "print the service a URL belongs to",
        "Print the service name a URL maps to: hosts listed in connections.json first, then the built-in table "
        "(Gmail, Google Calendar/Drive/Sheets/Docs, Slack, Notion, Linear, GitHub, GitLab, Salesforce, HubSpot, "
        "Zendesk, Jira, Confluence, Asana, Dropbox, Microsoft Graph/Outlook/Teams/OneDrive, Zoom, Airtable, "
        "Intercom, ...). Exit code 3 when no service is known.",
        "which https://gmail.googleapis.com/gmail/v1/users/me/messages\n"
        "which https://acme.atlassian.net/rest/api/3/issue/X-1",
        (arg("url", metavar="URL"),),
    ),
    Command(
        "config",
        "register which Scalekit connection serves SERVICE (looked up at Scalekit when no name is given)",
        "Write SERVICE -> CONNECTION_NAME into connections.json, atomically and under a lock; other entries and "
        "unknown keys are kept. Prints what changed. Without CONNECTION_NAME the connection is looked up at "
        "Scalekit by its provider (gmail -> GMAIL, google-calendar -> GOOGLECALENDAR) or name: one match is "
        "saved (and named); several are a numbered choice on a terminal, else they are listed (with --json as "
        '{"candidates": [...]} on stdout) and nothing is saved: exit code 12, for the user to choose. A '
        "CONNECTION_NAME is checked at Scalekit first and refused, with what does exist, when it is not there "
        "(exit 3); --offline saves it without asking Scalekit.",
        "config gmail\nconfig gmail --json\nconfig gmail gmail_u3134a\nconfig slack slack_x7y9z --identifier alice\n"
        "config notion notion_demo --offline",
        (
            arg("service", metavar="SERVICE", help="short service name, e.g. gmail"),
            arg(
                "connection_name",
                nargs="?",
                metavar="CONNECTION_NAME",
                help="the connection's name at Scalekit (default: look it up)",
            ),
            arg("--identifier", "-i", metavar="ID", help="default account identifier for this service"),
            arg("--offline", action="store_true", help="save CONNECTION_NAME without checking it at Scalekit"),
            arg("--json", action="store_true", help="one JSON object on stdout: what was saved, or the candidates"),
        ),
    ),
    Command(
        "connections",
        "list the environment's connections at Scalekit (name, provider, status, auth mode)",
        "List every connection of the Scalekit environment: its name (what `config SERVICE NAME` takes), "
        "provider, set-up status, auth mode (USER: each user connects their own account; ORG_WIDE: one shared "
        "credential) and the configured services that use it. Never a credential.",
        "connections\nconnections --json\nconnections --provider gmail",
        (
            arg("--provider", metavar="PROVIDER", help="only this connector's, e.g. GMAIL"),
            arg("--query", metavar="TEXT", help="only names or providers containing TEXT (3-100 characters)"),
            arg("--json", action="store_true", help="a JSON array instead of a table"),
        ),
    ),
    Command(
        "remove",
        "forget SERVICE (the account stays connected at Scalekit)",
        "Remove SERVICE from connections.json. The account stays connected at Scalekit: `disconnect SERVICE` "
        "revokes it.",
        "remove slack",
        (arg("service", metavar="SERVICE"),),
    ),
    Command(
        "disconnect",
        "revoke SERVICE's connected account at Scalekit",
        "Revoke SERVICE's connected account at Scalekit (its tokens stop working; the user must authorize "
        "again), and forget its cached token here and in a running agent. connections.json keeps the entry "
        "(`remove` forgets it). Asks first on a terminal; without a terminal it needs --yes (else exit 2). "
        "An account Scalekit does not have is reported, exit 0.",
        "disconnect gmail\ndisconnect gmail --identifier alice --yes",
        (
            arg("service", metavar="SERVICE"),
            IDENTIFIER,
            arg("--yes", "-y", action="store_true", help="do not ask (needed when stdin is not a terminal)"),
        ),
    ),
    Command(
        "list",
        "list configured services",
        "List configured services, their Scalekit connection names and identifiers. --status asks Scalekit for "
        "each account's live status (concurrently).",
        "list\nlist --status\nlist --json",
        (
            arg("--status", action="store_true", help="also ask Scalekit for each account's status"),
            arg("--json", action="store_true", help="JSON array instead of a table"),
        ),
    ),
    Command(
        "status",
        "show whether each service is ready",
        "One line per service: configured? account status? token expiry? Never the token. Exit code 0 when every "
        "account is ACTIVE, 4 when one needs authorization, 3 when one is not configured.",
        "status\nstatus gmail",
        (arg("services", nargs="*", metavar="SERVICE"),),
    ),
    Command(
        "doctor",
        "check the whole set-up",
        "Check .env (and its permissions), the credentials, the environment URL, that Scalekit is reachable and "
        "accepts the credentials, connections.json and the agent identity. One line per check with a fix.",
        "doctor",
    ),
    Command(
        "verify",
        "complete a custom user verification from the address the browser ended on",
        "With custom user verification (AgentKit > User Verification in the Scalekit dashboard), Scalekit sends "
        "the browser to SCALEKIT_USER_VERIFY_URL after the user allowed access, with ?auth_request_id=... in the "
        "address, and the account stays PENDING_VERIFICATION until this application confirms the user. Pass that "
        "address (or just the id) here. The identifier is the one the link was issued for: --identifier, else "
        "--service's, else the agent's name.",
        "verify 'https://example.com/verify?auth_request_id=abc...&state=xyz'\nverify abc... --service gmail",
        (
            arg("address", metavar="ADDRESS", help="the address the browser ended on, or its auth_request_id"),
            arg("--service", "-s", metavar="SERVICE", help="use this service's identifier"),
            arg("--identifier", "-i", metavar="ID", help="whose account the link was for"),
            arg("--json", action="store_true", help="one JSON object on stdout"),
        ),
    ),
    Command(
        "migrate",
        "move .env and connections.json out of the skill folder",
        "Move .env and connections.json from the skill folder (the original layout, where `clawhub update` "
        "deletes them), or from the config folder once OpenClaw is installed, to the state folder that survives "
        "updates (`doctor` shows it). File modes are kept; a different file already there is never overwritten.",
        "migrate",
    ),
    Command(
        "agent",
        "keep a warm token agent running (like ssh-agent)",
        "A background process holding the Scalekit client and the memory cache, so later `token`, `header`, "
        "`exec` and `get_token.py` calls (and get_token() in Python) answer in milliseconds without loading the "
        "Scalekit SDK. Tokens stay in its memory only; it serves only your user through a private Unix socket "
        "and exits after --idle-timeout seconds without a request (default 900). SCALEKIT_AUTH_AGENT=0 makes "
        "callers ignore it.",
        "agent start\nagent start --idle-timeout 3600\nagent status\nagent stop",
        (
            arg("action", choices=("start", "stop", "status"), help="start (idempotent), stop, or status"),
            arg("--idle-timeout", type=_seconds, default=None, metavar="SECONDS", help="exit after this idle time"),
            arg("--json", action="store_true", help="status as JSON"),
        ),
    ),
    Command(
        "demo",
        "walk the whole flow against a local Scalekit emulator (no account needed)",
        "Start a local Scalekit emulator and walk the real flow: not configured -> configured -> "
        "authorization link -> token. Your own .env and connections.json are not touched.",
        "demo\ndemo --service slack\ndemo --browser",
        (
            arg("--service", default="gmail", help="service to demonstrate (default: gmail)"),
            arg(
                "--browser",
                action="store_true",
                help="open the authorization link in your browser and wait for your click (default: simulate it)",
            ),
            arg(
                "--timeout",
                type=float,
                default=120.0,
                metavar="SECONDS",
                help="seconds to wait for your click with --browser",
            ),
        ),
    ),
)


HELP = Command(
    "help",
    "show this help, or a command's (the same as COMMAND --help)",
    "Show the list of commands, or one command's usage, options, examples and exit codes.",
    "help\nhelp token",
    (arg("topic", nargs="?", metavar="COMMAND", help="the command to explain"),),
)


def _width() -> int:
    """The help's width, as argparse computes it (the terminal's, or $COLUMNS), at least 60."""
    import shutil

    return max(60, shutil.get_terminal_size().columns - 2)


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, _width(), break_on_hyphens=False, break_long_words=False)


def _positional_name(argument: Arg) -> str:
    options = argument.options
    if options.get("metavar"):
        return str(options["metavar"])
    if options.get("choices"):
        return "|".join(options["choices"])
    return str(options.get("dest", argument.flags[0])).upper()


def synopsis(command: Command) -> str:
    """`name ARGS`, as the commands list shows it: the positional arguments (options are in its --help)."""
    words = [command.name]
    if command.synopsis:
        words.append(command.synopsis)
    else:
        for argument in command.args:
            if argument.flags[0].startswith("-"):
                continue
            name, nargs = _positional_name(argument), argument.options.get("nargs")
            words.append(
                f"{name}..."
                if nargs == "+"
                else f"[{name}...]"
                if nargs in ("*", argparse.REMAINDER)
                else f"[{name}]"
                if nargs == "?"
                else name
            )
    if command.after:
        words.append(command.after)
    return " ".join(words)


def commands_help(commands: Sequence[Command]) -> str:
    """The `commands:` section: each command once, in the table's order, with its summary."""
    import textwrap

    column = min(26, max(len(synopsis(c)) for c in commands))
    lines = ["commands:"]
    for command in commands:
        head = synopsis(command)
        indent = " " * (column + 4)
        if len(head) > column:
            lines.append(f"  {head}")
            first = indent
        else:
            first = f"  {head:<{column}}  "
        lines += textwrap.wrap(
            command.summary, _width(), initial_indent=first, subsequent_indent=indent, break_on_hyphens=False
        )
    return "\n".join(lines) + "\n"


def _epilog(command: Command, prog: str) -> str:
    if command.name == "token":
        examples = SHELL_EXAMPLES.format(prog=f"{prog} token")
    else:
        examples = "examples:\n" + "".join(f"  {prog} {line}\n" for line in command.examples.strip().splitlines())
    return examples + "\n" + exit_codes_help()


def _add_arguments(parser: argparse.ArgumentParser, args: Sequence[Arg]) -> None:
    """add_argument for each; one metavar per kind of value: SECONDS for every duration, and a
    positional's choices shown as a|b|c."""
    for argument in args:
        options = dict(argument.options)
        if "metavar" not in options:
            if options.get("type") is _seconds:
                options["metavar"] = "SECONDS"
            elif options.get("choices") and not argument.flags[0].startswith("-"):
                options["metavar"] = "|".join(options["choices"])
        parser.add_argument(*argument.flags, **options)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The `scalekit-auth` parser, built from COMMANDS. `prog`: the command as usage lines and examples
    name it (default: the way the user can run it here, invocation.runnable())."""
    from . import __version__
    from .invocation import runnable

    prog = prog or runnable()
    listed = (*COMMANDS, HELP)
    parser = _Parser(
        prog=prog,
        usage=f"{prog} [--debug] COMMAND [ARGS ...]\n       {prog} help [COMMAND]\n       {prog} --version",
        description=_wrap("Fresh OAuth tokens from Scalekit's token vault, never written to disk.")
        + "\n\n"
        + commands_help(listed),
        epilog=TOP_EXAMPLES.format(prog=prog) + "\n" + exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}", help=VERSION_HELP)
    # The commands are listed above, from the same table; argparse's own list would repeat them.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS)
    parser.commands = {}
    for command in listed:
        p = sub.add_parser(
            command.name,
            prog=f"{prog} {command.name}",
            parents=[_common()],
            description=_wrap(command.description),
            epilog=_epilog(command, prog),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_arguments(p, command.args)
        if command.after:  # argparse cannot show what it does not parse: the command after `--`
            p.usage = p.format_usage().removeprefix("usage: ").rstrip("\n") + f" {command.after}"
        p.set_defaults(func=f"cmd_{command.name}", **command.defaults)
        parser.commands[command.name] = p
    parser.commands["help"].set_defaults(func="help")
    return parser


def build_token_parser(prog: str) -> argparse.ArgumentParser:
    """`get_token.py SERVICE...`: the same as `scalekit-auth token SERVICE...`."""
    from . import __version__

    p = _Parser(
        prog=prog,
        description="Print a fresh access token (or API key) for each SERVICE, one per line on stdout.",
        epilog=SHELL_EXAMPLES.format(prog=f"python3 {prog}") + "\n" + exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(top=True)],
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}", help=VERSION_HELP)
    _add_arguments(p, TOKEN_ARGS)
    p.set_defaults(func="cmd_token")
    return p


def _help(parser: argparse.ArgumentParser, topic: str | None) -> int:
    """`help [COMMAND]`: exactly what --help prints (an unknown COMMAND: a usage error, exit 2)."""
    commands: dict[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
    if topic is None:
        parser.print_help()
        return int(ExitCode.OK)
    if topic not in commands:
        try:
            commands["help"].error(f"unknown command {topic!r} (choose from {', '.join(commands)})")
        except SystemExit as exc:
            return int(exc.code or 0)
    commands[topic].print_help()
    return int(ExitCode.OK)


def _split_exec(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """`exec gmail -- cmd args` -> (['exec', 'gmail'], ['cmd', 'args']); argparse cannot do this split."""
    if "--" in argv:
        cut = argv.index("--")
        if "exec" in argv[:cut]:
            return argv[:cut], argv[cut + 1 :]
    return argv, None


class _ClosedStream:
    """Stands in for sys.stdout when the process was started with it closed (`cmd >&-`)."""

    def write(self, _text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "stdout is closed")

    def flush(self) -> None:  # nothing is ever buffered
        pass

    def fileno(self) -> int:
        return 1

    def isatty(self) -> bool:
        return False

    @property
    def buffer(self) -> _ClosedStream:  # binary writes fail the same way
        return self


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None, prog: str) -> int:
    from . import bootstrap

    bootstrap.claim_process()  # our own process: the private packages may go on its sys.path
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, command = _split_exec(argv)
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:  # said by the command's own parser, with its usage line (argparse would use the top one)
            by_name: dict[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
            by_name.get(getattr(args, "command", ""), parser).error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    if args.func == "help":
        return _help(parser, args.topic)
    if command is not None and command:
        args.cmd = command
    elif getattr(args, "command", None) == "exec":
        from .invocation import command as runs

        print(f"{prog} exec: put the command after '--', e.g. {runs('exec gmail -- python3 app.py')}", file=sys.stderr)
        return int(ExitCode.USAGE)
    debug = args.debug or os.environ.get(DEBUG_VAR, "") not in ("", "0")
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format=f"{prog}: %(name)s: %(message)s", stream=sys.stderr)
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    road = None
    try:
        from . import commands
        from .broker import TokenBroker
        from .sources import LocalSource, Road

        # The one road to a token for this process (sources.Road): a short-lived command that
        # hands a token to the shell or a program may start the agent; the others use a running one.
        road = Road(LocalSource(TokenBroker()), may_start=args.func in _SHELL_TOKEN_COMMANDS, remember=False)
        code = int(getattr(commands, args.func)(args, road))
        sys.stdout.flush()
        return code
    except ScalekitAuthError as err:
        if debug:
            _print_traceback()
        from .display import printable
        from .errors import BatchError

        # Names and values in messages come from files and the network: never raw control characters.
        print(f"{prog}: {printable(str(err), keep_newlines=isinstance(err, BatchError))}", file=sys.stderr)
        return int(err.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # the reader went away (`... | head -1`): quiet, like any Unix filter
        _silence_stdout()
        return int(ExitCode.ERROR)
    except OSError as err:
        import errno

        if err.errno == errno.EBADF:
            why = "it is closed (run it with its output going somewhere)"
            print(f"{prog}: cannot write to stdout: {why}", file=sys.stderr)
        elif err.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG):  # files are checked elsewhere
            print(f"{prog}: cannot write to stdout: {err.strerror}", file=sys.stderr)
            _silence_stdout()
        else:
            return _unexpected(err, prog, debug)
        return int(ExitCode.ERROR)
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback without --debug
        return _unexpected(err, prog, debug)
    finally:
        if road is not None:
            road.close()


def _unexpected(err: BaseException, prog: str, debug: bool) -> int:
    if debug:
        _print_traceback()
    print(
        f"{prog}: unexpected error ({err.__class__.__name__}). Run again with --debug and report it.", file=sys.stderr
    )
    return int(ExitCode.ERROR)


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so Python's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


#: Short-lived calls that hand a token to the shell or a program: they may start the agent.
_SHELL_TOKEN_COMMANDS = ("cmd_token", "cmd_header", "cmd_exec", "cmd_curl", "cmd_request")


def _print_traceback() -> None:
    import traceback

    from .display import printable
    from .logs import redact_text

    # The same redaction as messages and logs: upstream text in a traceback may carry a token.
    sys.stderr.write(printable(redact_text(traceback.format_exc())))


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of `scalekit-auth` / `python3 -m scalekit_auth`. Usage lines and examples name the
    command as the user can run it here (invocation.runnable()); messages begin `scalekit-auth:`."""
    return _run(build_parser(prog), argv, prog or PROG)


def get_token_main(argv: Sequence[str] | None = None, prog: str = "get_token.py") -> int:
    """Entry point of `get_token.py`."""
    return _run(build_token_parser(prog), argv, prog)
