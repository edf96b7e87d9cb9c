"""`scalekit-auth doctor`: check the set-up one step at a time, each with a fix. Never prints a secret."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .broker import TokenBroker
from .config import (
    CREDENTIALS,
    ENV_URL,
    Found,
    Setting,
    env_file_mode_warning,
    env_files,
    find,
    normalize_env_url,
    read_env_file,
    settings_sources,
    where_to_put_credentials,
)
from .errors import ConfigurationError, ExitCode, ScalekitAuthError


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # "ok", "warn" or "fail"
    detail: str
    fix: str = ""
    exit_code: int = int(ExitCode.CONFIGURATION)


def _writable(folder: Path) -> str | None:
    """Why `config` could not save in folder (None when it can, or when it does not exist yet)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return None
        probe = probe.parent
    from .connections import _read_only_fs

    if _read_only_fs(probe):
        return f"{probe} is on a read-only file system"
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable by you"
    return None


def _folder_checks(broker: TokenBroker) -> list[Check]:
    """Which folder holds the user's files, why, whether it can be written, and what is left behind."""
    env = broker.environ
    folder = broker.directory
    if env.get(paths.SKILL_DIR_VAR, "").strip():
        why = "SCALEKIT_AUTH_DIR"
    elif paths.under_openclaw(env):
        why = "OpenClaw's state folder"
    else:
        why = "your config folder"
    exists = "" if folder.is_dir() else " (created by the first `scalekit-auth config`)"
    checks = [Check("state folder", "ok", f"{folder} ({why}){exists}")]
    left = paths.legacy_files(env)
    if left:
        checks.append(
            Check(
                "state folder",
                "warn",
                f"{' and '.join(left)} still in the skill folder (original layout; read until moved, but "
                "`clawhub update` replaces that folder)",
                f"scalekit-auth migrate (moves them to {folder})",
            )
        )
    problem = _writable(folder)
    if problem:
        checks.append(
            Check(
                "state folder",
                "warn",
                f"{problem}: `scalekit-auth config` cannot save connections there",
                "in a sandbox, mount a writable folder and point SCALEKIT_AUTH_DIR at it",
            )
        )
    return checks


def run_checks(broker: TokenBroker) -> list[Check]:
    checks: list[Check] = _folder_checks(broker)
    folder = broker.directory
    env = broker.environ
    files: list[tuple[Path, dict[str, str]]] = []
    for env_file in env_files(folder, env):
        try:
            files.append((env_file, read_env_file(env_file)))
        except ConfigurationError as err:
            fix = "save it as UTF-8 text" if "UTF-8" in str(err) else f"fix or remove {env_file}"
            shared = paths.under_openclaw(env) and env_file == Path(paths.openclaw_state_dir(env), ".env")
            checks.append(Check(".env", "warn" if shared else "fail", str(err), fix))
            continue
        if not env_file.exists():
            continue
        if warning := env_file_mode_warning(env_file):
            checks.append(Check(".env", "warn", warning, f"chmod 600 {env_file}"))
        else:
            checks.append(Check(".env", "ok", f"{env_file} (private to you)"))

    sources = settings_sources(folder, env, problems=[])  # unreadable files: reported above
    found: dict[Setting, Found | None] = {}
    conflict: ConfigurationError | None = None
    for setting in CREDENTIALS:
        try:
            found[setting] = find(sources, setting)
        except ConfigurationError as err:  # one source names the URL twice, differently
            found[setting], conflict = None, err
    missing = [setting.label for setting, hit in found.items() if hit is None and conflict is None]
    if missing:
        checks.append(
            Check(
                "credentials",
                "fail",
                f"{', '.join(missing)} not set",
                f"the user adds {'it' if len(missing) == 1 else 'them'} to {where_to_put_credentials(folder, env)} "
                "(dashboard > Developers > Settings > API credentials; never in chat)",
            )
        )
    elif conflict is None:
        checks.append(Check("credentials", "ok", "; ".join(str(hit) for hit in found.values() if hit)))

    url_ok = False
    raw_url = found[ENV_URL]
    if conflict is not None:
        checks.append(Check("environment URL", "fail", str(conflict), "keep one of the two names"))
    if raw_url:
        try:
            url = normalize_env_url(raw_url.value, str(raw_url))
            checks.append(Check("environment URL", "ok", url))
            url_ok = True
        except ConfigurationError as err:
            checks.append(Check("environment URL", "fail", str(err), "copy it from the Scalekit dashboard"))

    if url_ok and raw_url:
        route = _route_check(normalize_env_url(raw_url.value, str(raw_url)))
        checks.append(route)
        url_ok = route.level == "ok"
    if not missing and url_ok:
        try:
            settings = broker.settings()
            vault = broker.vault(settings)
            started = time.monotonic()
            from .deadlines import deadline

            with deadline(settings.timeout):
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
            checks.append(
                Check("connections.json", "ok", f"{broker.connections_file}: {len(entries)} service(s): {names}")
            )
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
    checks.append(_agent_check(broker))
    for env_file, _ in files:
        if os.name == "posix" and env_file.exists() and not os.access(env_file, os.R_OK):
            checks.append(Check(".env", "fail", f"{env_file} is not readable by you", f"chmod 600 {env_file}"))
    return checks


ROUTE_TIMEOUT = 10.0


def _route_check(url: str) -> Check:
    """Can this machine open a TCP connection to the Scalekit host at all (DNS, firewall, sandbox)?"""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    target = parts.hostname or ""
    target_port = parts.port or (443 if parts.scheme == "https" else 80)
    host, port, via = target, target_port, ""
    import urllib.request

    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(target):  # the SDK's HTTP and gRPC calls go through it too
        proxied = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        host, port = proxied.hostname or "", proxied.port or (443 if proxied.scheme == "https" else 80)
        via = f" through the proxy {host}:{port}"
    fix = (
        "check the URL and this machine's network; a sandboxed agent needs network access to this host "
        "(OpenClaw: agents.defaults.sandbox.docker.network must not be 'none')"
    )
    unavailable = int(ExitCode.UNAVAILABLE)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        return Check("network", "fail", f"cannot resolve {host}{via} ({err})", fix, exit_code=unavailable)
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(ROUTE_TIMEOUT)
                sock.connect(address)
            return Check("network", "ok", f"{target}:{target_port} is reachable{via}")
        except OSError as err:
            last = err
    reason = "timed out" if isinstance(last, TimeoutError) else (getattr(last, "strerror", None) or str(last))
    where = f"the proxy {host}:{port} (for {target})" if via else f"{target}:{target_port}"
    return Check("network", "fail", f"no route to {where} ({reason})", fix, exit_code=unavailable)


def _agent_check(broker: TokenBroker) -> Check:
    """Whether a token agent runs for this configuration, and why (not)."""
    from . import agent
    from .agent_client import AgentNotAnsweringError

    env = broker.environ
    try:
        info = agent.status(env)
    except AgentNotAnsweringError as err:
        return Check("agent", "warn", str(err), f"kill {err.pid}" if err.pid else "")
    if info is None:
        if paths.agent_enabled(env):
            return Check("agent", "ok", "not running; the next shell call starts one (SCALEKIT_AUTH_AGENT=0: never)")
        return Check("agent", "ok", "off (SCALEKIT_AUTH_AGENT=0): every shell call loads the SDK itself")
    how = "by the first shell call" if info.get("started_by") == "auto" else "by `scalekit-auth agent start`"
    note = "" if info.get("context_matches") else "; started with other settings, so this shell does not use it"
    return Check(
        "agent",
        "warn" if note else "ok",
        f"running (pid {info['pid']}, started {how}, exits after {info['idle_timeout'] / 60:g} min idle){note}",
        "scalekit-auth agent stop" if note else "",
    )


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
