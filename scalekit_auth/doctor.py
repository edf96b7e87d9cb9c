"""`scalekit-auth doctor`: check the set-up one step at a time, each with a fix. Never prints a secret."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
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
from .invocation import command


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
    from .connections import read_only_fs

    if read_only_fs(probe):
        return f"{probe} is on a read-only file system"
    if not os.access(probe, os.W_OK):
        return f"{probe} is not writable by you"
    return None


@dataclass
class _Run:
    """One doctor run: what the checks so far have found, for the checks after them."""

    broker: TokenBroker
    #: The .env files that could be read.
    env_files: list[Path] = field(default_factory=list)
    #: All three credentials found, each under one name.
    credentials_complete: bool = False
    #: The environment URL, once it is valid (and, after the network check, reachable).
    url: str | None = None

    @property
    def folder(self) -> Path:
        return self.broker.directory

    @property
    def env(self) -> Mapping[str, str]:
        return self.broker.environ

    @cached_property
    def credentials(self) -> tuple[dict[Setting, Found | None], ConfigurationError | None]:
        """Each credential as get_token finds it (config.find), and the error of a URL named twice differently."""
        sources = settings_sources(self.folder, self.env, problems=[])  # unreadable files: the .env check
        found: dict[Setting, Found | None] = {}
        conflict: ConfigurationError | None = None
        for setting in CREDENTIALS:
            try:
                found[setting] = find(sources, setting)
            except ConfigurationError as err:
                found[setting], conflict = None, err
        return found, conflict


def _folder_checks(run: _Run) -> list[Check]:
    """Which folder holds the user's files, why, whether it can be written, and what is left behind."""
    env = run.env
    folder = run.folder
    why = paths.state_choice(env)[1]
    exists = "" if folder.is_dir() else f" (created by the first `{command('config')}`)"
    checks = [Check("state folder", "ok", f"{folder} ({why}){exists}")]
    left = paths.legacy_files(env)
    if left:
        checks.append(
            Check(
                "state folder",
                "warn",
                f"{' and '.join(left)} still in the skill folder (original layout; read until moved, but "
                "`clawhub update` replaces that folder)",
                f"{command('migrate')} (moves them to {folder})",
            )
        )
    moved = paths.migrated_leftovers(env)
    if moved:
        checks.append(
            Check(
                "state folder",
                "ok",
                f"{' and '.join(moved)} moved to {folder} by migrate; the old "
                f"{'copy' if len(moved) == 1 else 'copies'} (read-only folder) {'is' if len(moved) == 1 else 'are'} "
                "not read",
            )
        )
    from .migrate import leftovers

    stale = [str(p) for p in leftovers(folder)]
    stale += [str(p) for p in leftovers(Path(paths.openclaw_state_dir(env)), folders=True)]
    if stale:
        checks.append(
            Check(
                "state folder",
                "warn",
                f"{' and '.join(stale)} left by an interrupted migrate (may hold a copy of your .env)",
                f"{command('migrate')} (removes them)",
            )
        )
    problem = _writable(folder)
    if problem:
        checks.append(
            Check(
                "state folder",
                "warn",
                f"{problem}: `{command('config')}` cannot save connections there",
                "in a sandbox, mount a writable folder and point SCALEKIT_AUTH_DIR at it",
            )
        )
    return checks


def _openclaw_folder_checks(run: _Run) -> list[Check]:
    """Files in the config folder and OpenClaw's: which are in use, and how to move them (migrate)."""
    env = run.env
    why = paths.state_choice(env)[1]
    if why == paths.KEPT_CONFIG_FOLDER:
        openclaw = paths.openclaw_skill_state_dir(env)
        return [
            Check(
                "state folder",
                "warn",
                f"{openclaw} holds no files yet, so the ones saved in {run.folder} before OpenClaw was installed "
                "stay in use",
                f"{command('migrate')} (moves them to {openclaw})",
            )
        ]
    config = paths.config_state_dir(env)
    hidden = [
        path
        for path in (os.path.join(config, name) for name in paths.STATE_FILES)
        if os.path.lexists(path) and not paths.migrated(path, env)
    ]
    if why != paths.OPENCLAW_FOLDER or not hidden:
        return []
    return [
        Check(
            "state folder",
            "warn",
            f"{' and '.join(hidden)} {'is' if len(hidden) == 1 else 'are'} not read: OpenClaw's state folder is in use",
            f"compare with the copy in {run.folder}, keep what you need there, then delete the old one",
        )
    ]


def _env_file_checks(run: _Run) -> list[Check]:
    """Each .env read (see config.env_files): readable, and private to the user."""
    checks = []
    env = run.env
    for env_file in env_files(run.folder, env):
        try:
            read_env_file(env_file)
        except ConfigurationError as err:
            fix = "save it as UTF-8 text" if "UTF-8" in str(err) else f"fix or remove {env_file}"
            shared = paths.under_openclaw(env) and env_file == Path(paths.openclaw_state_dir(env), ".env")
            checks.append(Check(".env", "warn" if shared else "fail", str(err), fix))
            continue
        run.env_files.append(env_file)
        if not env_file.exists():
            continue
        if warning := env_file_mode_warning(env_file):
            checks.append(Check(".env", "warn", warning, f"chmod 600 {env_file}"))
        else:
            checks.append(Check(".env", "ok", f"{env_file} (private to you)"))
    return checks


def _credentials_check(run: _Run) -> list[Check]:
    """Which name and source each credential comes from, or which are missing."""
    found, conflict = run.credentials
    if conflict is not None:
        return []  # the environment URL check reports it
    missing = [setting.label for setting, hit in found.items() if hit is None]
    if missing:
        where = where_to_put_credentials(run.folder, run.env)
        return [
            Check(
                "credentials",
                "fail",
                f"{', '.join(missing)} not set",
                f"the user adds {'it' if len(missing) == 1 else 'them'} to {where} "
                "(dashboard > Developers > Settings > API credentials; never in chat)",
            )
        ]
    run.credentials_complete = True
    return [Check("credentials", "ok", "; ".join(str(hit) for hit in found.values() if hit))]


def _env_url_check(run: _Run) -> list[Check]:
    found, conflict = run.credentials
    if conflict is not None:
        return [Check("environment URL", "fail", str(conflict), "keep one of the two names")]
    raw = found[ENV_URL]
    if raw is None:
        return []
    try:
        run.url = normalize_env_url(raw.value, str(raw))
    except ConfigurationError as err:
        return [Check("environment URL", "fail", str(err), "copy it from the Scalekit dashboard")]
    return [Check("environment URL", "ok", run.url)]


def _network_check(run: _Run) -> list[Check]:
    if run.url is None:
        return []
    route = _route_check(run.url)
    if route.level != "ok":
        run.url = None
    return [route]


def _scalekit_check(run: _Run) -> list[Check]:
    """Log in to Scalekit with the credentials, as get_token would."""
    if not (run.credentials_complete and run.url):
        return [Check("Scalekit", "warn", "not contacted (fix the checks above first)")]
    broker = run.broker
    try:
        settings = broker.settings()
        vault = broker.vault(settings)
        started = time.monotonic()
        from .deadlines import deadline

        with deadline(settings.timeout):
            vault.connect()
    except ScalekitAuthError as err:
        return [Check("Scalekit", "fail", str(err), "see the message", exit_code=int(getattr(err, "exit_code", 1)))]
    took = (time.monotonic() - started) * 1000
    return [Check("Scalekit", "ok", f"reached {settings.env_url}, credentials accepted ({took:.0f} ms)")]


def _connections_check(run: _Run) -> list[Check]:
    broker = run.broker
    try:
        entries = broker.connections()
    except ConfigurationError as err:
        return [Check("connections.json", "fail", str(err), "fix the file, or move it away and re-run config")]
    if not entries:
        return [
            Check(
                "connections.json",
                "warn",
                f"no services in {broker.connections_file}",
                command("config", "gmail", "<connection_name>"),
            )
        ]
    names = ", ".join(f"{s} -> {e.connection_name}" for s, e in entries.items())
    return [Check("connections.json", "ok", f"{broker.connections_file}: {len(entries)} service(s): {names}")]


def _readable_check(run: _Run) -> list[Check]:
    """A .env that was read but that the user could not read (another user's: root's, an ACL's)."""
    return [
        Check(".env", "fail", f"{env_file} is not readable by you", f"chmod 600 {env_file}")
        for env_file in run.env_files
        if os.name == "posix" and env_file.exists() and not os.access(env_file, os.R_OK)
    ]


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


def _agent_check(run: _Run) -> list[Check]:
    """Whether a token agent runs for this configuration, and why (not)."""
    from . import agent
    from .agent_client import AgentNotAnsweringError

    env = run.env
    try:
        info = agent.status(env)
    except AgentNotAnsweringError as err:
        return [Check("agent", "warn", str(err), f"kill {err.pid}" if err.pid else "")]
    if info is None:
        if paths.agent_enabled(env):
            return [Check("agent", "ok", "not running; the next shell call starts one (SCALEKIT_AUTH_AGENT=0: never)")]
        return [Check("agent", "ok", "off (SCALEKIT_AUTH_AGENT=0): every shell call loads the SDK itself")]
    how = "by the first shell call" if info.get("started_by") == "auto" else "by `agent start`"
    note = "" if info.get("context_matches") else "; started with other settings, so this shell does not use it"
    detail = f"running (pid {info['pid']}, started {how}, exits after {info['idle_timeout'] / 60:g} min idle){note}"
    return [Check("agent", "warn" if note else "ok", detail, command("agent", "stop") if note else "")]


def _identity_check(run: _Run) -> list[Check]:
    """Where the default identifier comes from, and whether it can be used."""
    broker = run.broker
    try:
        ident, source = broker.agent_identity()
        broker.default_identifier()
    except ConfigurationError as err:
        return [Check("identity", "fail", str(err))]
    if source.startswith("fallback"):
        return [
            Check(
                "identity",
                "ok",
                f"default identifier '{ident}' ({source})",
                "put '**Name:** <name>' in IDENTITY.md or set identifier in connections.json",
            )
        ]
    return [Check("identity", "ok", f"default identifier '{ident}' (from {source})")]


#: Every check, in the order doctor runs and prints them; each sees what the ones before it found.
CHECKS: tuple[Callable[[_Run], list[Check]], ...] = (
    _folder_checks,
    _openclaw_folder_checks,
    _env_file_checks,
    _credentials_check,
    _env_url_check,
    _network_check,
    _scalekit_check,
    _connections_check,
    _identity_check,
    _agent_check,
    _readable_check,
)


def run_checks(broker: TokenBroker) -> list[Check]:
    run = _Run(broker)
    return [check for step in CHECKS for check in step(run)]
