"""`scalekit-auth demo`: the whole flow, for real, against a local Scalekit emulator.

Uses a throwaway skill folder, so the user's own .env and connections.json are never
read or changed, and drops any SCALEKIT_* variables from this process first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from . import paths
from .errors import AuthorizationError, ConfigurationError, ExitCode
from .invocation import command

DEMO_CONNECTIONS = {"gmail": "gmail_u3134a", "slack": "slack_x7y9z", "github": "github_demo", "notion": "notion_demo"}
AGENT_NAME = "Mess"


def _say(step: str, text: str = "") -> None:
    print(step)
    for line in text.splitlines():
        print(
            textwrap.fill(
                line,
                width=100,
                initial_indent="      ",
                subsequent_indent="        ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    sys.stdout.flush()


def _click_allow(link: str) -> None:
    """Do what a person's browser does: load the consent page, then press Allow."""
    import requests

    with requests.Session() as http:
        http.trust_env = False  # loopback; never through a proxy
        page = http.get(link, timeout=10)
        page.raise_for_status()
        done = http.post(link, data={"decision": "allow"}, timeout=10)
        done.raise_for_status()


def _shell_step(skill_folder: Path, env_extra: dict[str, str], service: str) -> tuple[int, str, str]:
    script = Path(__file__).resolve().parent.parent / "get_token.py"
    cmd = (
        [sys.executable, str(script), service]
        if script.exists()
        else [sys.executable, "-m", "scalekit_auth", "token", service]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEKIT_")}
    env.update(env_extra)
    env[paths.SKILL_DIR_VAR] = str(skill_folder)
    env[paths.AGENT_VAR] = "0"  # a throwaway folder and emulator: no agent may outlive the demo
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def run_demo(service: str = "gmail", browser: bool = False, timeout: float = 120.0) -> int:
    from .bootstrap import import_or_explain
    from .broker import TokenBroker
    from .credentials import redact

    import_or_explain("scalekit.client", "scalekit-sdk-python")  # on a bare Python: the private environment first
    from .emulator import Emulator

    started = time.monotonic()
    connection_name = DEMO_CONNECTIONS.get(service, f"{service}_demo")
    for name in [k for k in os.environ if k.startswith("SCALEKIT_") and k != "SCALEKIT_EMULATOR_CA_DIR"]:
        del os.environ[name]

    print("scalekit-auth demo: the real flow against a local Scalekit emulator (no account needed)\n")
    with (
        tempfile.TemporaryDirectory(prefix="scalekit-auth-demo-") as tmp,
        Emulator(connections=[connection_name, *DEMO_CONNECTIONS.values()]) as emu,
    ):
        folder = Path(tmp)
        ca_env = {k: emu.env[k] for k in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")}
        os.environ.update(ca_env)
        os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
        env_file = folder / ".env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(
                f"SCALEKIT_ENVIRONMENT_URL={emu.url}\nSCALEKIT_CLIENT_ID={emu.client_id}\n"
                f"SCALEKIT_CLIENT_SECRET={emu.client_secret}\n"
            )
        identity = folder / "IDENTITY.md"
        identity.write_text(f"# Identity\n\n- **Name:** {AGENT_NAME}\n", encoding="utf-8")
        broker_env = {paths.IDENTITY_FILE_VAR: str(identity)}
        broker = TokenBroker(directory=folder, environ=broker_env)

        _say(
            "[1/6] Started a Scalekit emulator",
            f"{emu.url}  (HTTPS + gRPC over TLS; the unmodified Scalekit SDK talks to it)\n"
            f"skill folder: {folder}\n"
            f".env holds the emulator's client id/secret; IDENTITY.md names the agent '{AGENT_NAME}'.",
        )
        try:
            try:
                broker.get_token(service)
                _say("[2/6] Unexpected: the service was already configured.")
                return int(ExitCode.ERROR)
            except ConfigurationError as err:
                _say(
                    f'[2/6] get_token("{service}") before {service} is configured raises ConfigurationError:', str(err)
                )

            change = broker.configure_connection(service, connection_name)
            _say(
                f'[3/6] The user says "Configure {service.title()} for Scalekit. '
                f'Connection name is {connection_name}".',
                f"The agent runs: {command('config', service, connection_name)}\n-> {change.describe()}",
            )

            try:
                broker.get_token(service)
                _say("[4/6] Unexpected: the account was already authorized.")
                return int(ExitCode.ERROR)
            except AuthorizationError as err:
                pending = err
                link = err.link
                _say(
                    f'[4/6] get_token("{service}") now raises AuthorizationError: '
                    "nobody has connected the account yet.",
                    f"{err}\nThe agent relays this link to the user (chat, Telegram, ...).",
                )

            if browser:
                import webbrowser

                from .execenv import scalekit_variables_hidden

                with scalekit_variables_hidden():  # the browser is a child: no SCALEKIT_* for it
                    opened = webbrowser.open(link)
                _say(
                    "[5/6] " + ("Opened the link in your browser." if opened else f"Open this link: {link}"),
                    f"Click Allow. Waiting up to {timeout:g} s ...",
                )
                deadline = time.monotonic() + timeout
                while emu.account(connection_name, pending.identifier)["status"] != "ACTIVE":
                    if time.monotonic() > deadline:
                        print(f"scalekit-auth demo: no click within {timeout:g} s; stopping.", file=sys.stderr)
                        return int(ExitCode.AUTHORIZATION_REQUIRED)
                    time.sleep(0.5)
            else:
                _click_allow(link)
                _say(
                    "[5/6] The user opens the link and clicks Allow (simulated; use --browser to click yourself).",
                    f"The account for '{pending.identifier}' is now "
                    f"{emu.account(connection_name, pending.identifier)['status']}.",
                )

            creds = broker.get_credentials(service)
            minutes = (creds.expires_in() or 0) / 60
            _say(
                f'[6/6] get_token("{service}") returns a fresh token from the vault:',
                f"{redact(creds.token)}  ({len(creds.token)} characters, expires in {minutes:.0f} min; "
                "shown redacted, as logs should)",
            )
            code, out, errtext = _shell_step(folder, {**ca_env, **broker_env}, service)
            token_ok = code == 0 and out.strip() == creds.token
            _say(
                f"      From a shell: TOKEN=$(python3 get_token.py {service})",
                f"-> exit {code}, stdout is {'exactly the token' if token_ok else repr(out[:20])}"
                + (f"\n{errtext.strip()}" if code else ""),
            )
        finally:
            broker.close()
        calls = emu.counters()
    print(
        f"\nDone in {time.monotonic() - started:.1f} s. Scalekit calls seen by the emulator: "
        f"{calls.get('oauth_token', 0)} client logins, {calls.get('rpc_calls', 0)} API calls, "
        f"{calls.get('links_issued', 0)} authorization link(s). Nothing was written outside a temp folder."
    )
    return int(ExitCode.OK if token_ok else ExitCode.ERROR)
