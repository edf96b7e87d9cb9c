"""`scalekit-auth doctor`: check the set-up one step at a time, each with a fix. Never prints a secret."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .broker import TokenBroker
from .config import (
    CLIENT_ID_VAR,
    CLIENT_SECRET_VAR,
    ENV_URL_VARS,
    env_file_mode_warning,
    normalize_env_url,
    read_env_file,
)
from .errors import ConfigurationError, ExitCode, ScalekitAuthError


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""
    exit_code: int = int(ExitCode.CONFIGURATION)


def run_checks(broker: TokenBroker) -> list[Check]:
    checks: list[Check] = []
    folder = broker.directory
    env = broker.environ
    checks.append(
        Check("skill folder", "ok", str(folder))
        if folder.is_dir()
        else Check("skill folder", "warn", f"{folder} does not exist yet", "scalekit-auth config creates it")
    )

    env_file = folder / ".env"
    try:
        from_file = read_env_file(env_file)
    except ConfigurationError as err:
        checks.append(Check(".env", "fail", str(err), "save it as UTF-8 text"))
        from_file = {}
    else:
        if not env_file.exists():
            checks.append(Check(".env", "ok", f"none at {env_file} (credentials must come from the environment)"))
        elif warning := env_file_mode_warning(env_file):
            checks.append(Check(".env", "warn", warning, f"chmod 600 {env_file}"))
        else:
            checks.append(Check(".env", "ok", f"{env_file} (private to you)"))

    def where(*names: str) -> str | None:
        for name in names:
            if env.get(name, "").strip():
                return f"{name} from the environment"
        for name in names:
            if from_file.get(name, "").strip():
                return f"{name} from .env"
        return None

    found = {
        "SCALEKIT_ENV_URL": where(*ENV_URL_VARS),
        CLIENT_ID_VAR: where(CLIENT_ID_VAR),
        CLIENT_SECRET_VAR: where(CLIENT_SECRET_VAR),
    }
    missing = [name for name, source in found.items() if source is None]
    if missing:
        checks.append(
            Check(
                "credentials",
                "fail",
                f"{', '.join(missing)} not set",
                f"add {'it' if len(missing) == 1 else 'them'} to {env_file} (dashboard > Developers > Settings > "
                "API credentials)",
            )
        )
    else:
        checks.append(Check("credentials", "ok", "; ".join(v for v in found.values() if v)))

    url_ok = False
    raw_url = next((env.get(n) or from_file.get(n) for n in ENV_URL_VARS if env.get(n) or from_file.get(n)), None)
    if raw_url:
        try:
            url = normalize_env_url(raw_url, "SCALEKIT_ENV_URL")
            checks.append(Check("environment URL", "ok", url))
            url_ok = True
        except ConfigurationError as err:
            checks.append(Check("environment URL", "fail", str(err), "copy it from the Scalekit dashboard"))

    if not missing and url_ok:
        try:
            settings = broker.settings()
            vault = broker.vault(settings)
            started = time.monotonic()
            vault.connect()
            took = (time.monotonic() - started) * 1000
            checks.append(Check("Scalekit", "ok", f"reached {settings.env_url}, credentials accepted ({took:.0f} ms)"))
        except ScalekitAuthError as err:
            checks.append(
                Check("Scalekit", "fail", str(err), "see the message", exit_code=int(getattr(err, "exit_code", 1)))
            )
    else:
        checks.append(Check("Scalekit", "warn", "not contacted (fix the checks above first)"))

    try:
        entries = broker.connections()
    except ConfigurationError as err:
        checks.append(Check("connections.json", "fail", str(err), "fix the file, or move it away and re-run config"))
        entries = None
    else:
        if entries:
            names = ", ".join(f"{s} -> {e.connection_name}" for s, e in entries.items())
            checks.append(Check("connections.json", "ok", f"{len(entries)} service(s): {names}"))
        else:
            checks.append(
                Check(
                    "connections.json",
                    "warn",
                    f"no services in {broker.connections_file}",
                    "scalekit-auth config gmail <connection_name>",
                )
            )

    checks.append(_identity_check(broker))
    if os.name == "posix" and env_file.exists() and not os.access(env_file, os.R_OK):
        checks.append(Check(".env", "fail", f"{env_file} is not readable by you", f"chmod 600 {env_file}"))
    return checks


def _identity_check(broker: TokenBroker) -> Check:
    """Where the default identifier comes from, and whether it can be used."""
    try:
        ident, source = broker._agent_name()
        broker._checked_agent_name(ident, source)
    except ConfigurationError as err:
        return Check("identity", "fail", str(err))
    if source.startswith("fallback"):
        return Check(
            "identity",
            "ok",
            f"default identifier '{ident}' ({source})",
            "put '**Name:** <name>' in IDENTITY.md or set identifier in connections.json",
        )
    return Check("identity", "ok", f"default identifier '{ident}' (from {source})")
