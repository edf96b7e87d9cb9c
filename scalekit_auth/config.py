"""Where the skill keeps its files, and the Scalekit client credentials (.env or environment).

The process environment wins over `.env`; `.env` is read, never written, and never
copied into `os.environ` (so child processes do not inherit the client secret).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import paths
from .errors import ConfigurationError, MissingCredentialsError, import_or_explain

SKILL_DIR_VAR = paths.SKILL_DIR_VAR
TIMEOUT_VAR = "SCALEKIT_TIMEOUT"
CACHE_VAR = "SCALEKIT_CACHE"
CACHE_MARGIN_VAR = "SCALEKIT_CACHE_MARGIN"
CACHE_TTL_VAR = "SCALEKIT_CACHE_TTL"
CACHE_MAX_VAR = "SCALEKIT_CACHE_MAX"
DEFAULT_CACHE_MAX = 10_000
ENV_URL_VARS = ("SCALEKIT_ENV_URL", "SCALEKIT_ENVIRONMENT_URL")
CLIENT_ID_VAR = "SCALEKIT_CLIENT_ID"
CLIENT_SECRET_VAR = "SCALEKIT_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
USER_VERIFY_URL_VAR = "SCALEKIT_USER_VERIFY_URL"
#: SCALEKIT_USER_VERIFY_URL=loopback: a waiting call verifies the user itself, on 127.0.0.1.
LOOPBACK = "loopback"
#: Scalekit's limit for user_verify_url (buf.validate in the SDK's descriptors).
USER_VERIFY_URL_MAX = 2048
DEFAULT_TIMEOUT = 10.0
DEFAULT_CACHE_MARGIN = 300.0
DEFAULT_CACHE_TTL = 60.0
#: Every variable load_settings reads (a change in any of them means re-reading).
SETTINGS_VARS = (
    *("SCALEKIT_ENV_URL", "SCALEKIT_ENVIRONMENT_URL"),
    "SCALEKIT_CLIENT_ID",
    "SCALEKIT_CLIENT_SECRET",
    TIMEOUT_VAR,
    CACHE_VAR,
    CACHE_MARGIN_VAR,
    CACHE_TTL_VAR,
    CACHE_MAX_VAR,
    USER_VERIFY_URL_VAR,
)


def skill_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding `.env` and `connections.json` (see paths.skill_dir)."""
    return Path(paths.skill_dir(environ))


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_env_url(raw: str, source: str) -> str:
    """Check an environment URL and return it without a trailing slash.

    HTTPS is required except for loopback hosts (the emulator); a path, query or
    fragment is refused because the SDK appends paths and dials host:port for gRPC.
    """
    url = raw.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ConfigurationError(
            f"{source} is not a valid URL ({err}): expected your environment URL, e.g. https://<env>.scalekit.com"
        ) from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(
            f"{source} must be your environment URL, e.g. https://<env>.scalekit.com (got a value without "
            f"{'a scheme' if not parts.scheme else 'a host'}); copy it from the Scalekit dashboard."
        )
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ConfigurationError(f"{source} must use https:// (plain http is only allowed for localhost).")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{source} must be just the environment's address, like https://<your-env>.scalekit.com, "
            "with no path, query or fragment."
        )
    if parts.username or parts.password:
        raise ConfigurationError(f"{source} must not contain a user name or password.")
    netloc = host if port is None else f"{host}:{port}"
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    return f"{parts.scheme}://{netloc}"


@dataclass(frozen=True)
class ScalekitSettings:
    """The three values a Scalekit client needs; the secret never shows in repr."""

    env_url: str
    client_id: str
    client_secret: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    cache: bool = True
    cache_margin: float = DEFAULT_CACHE_MARGIN
    cache_ttl: float = DEFAULT_CACHE_TTL
    cache_max: int = DEFAULT_CACHE_MAX
    #: "" (no custom verification), "loopback", or the URL Scalekit sends the browser to after consent.
    user_verify_url: str = ""

    def __repr__(self) -> str:
        return (
            f"ScalekitSettings(env_url={self.env_url!r}, client_id={self.client_id!r}, "
            f"client_secret='[REDACTED]', timeout={self.timeout!r}, cache={self.cache!r})"
        )


#: A .env holds three short lines; anything near this size is the wrong file.
ENV_FILE_LIMIT = 64 * 1024


def read_env_file(path: Path) -> dict[str, str]:
    """Values from a .env file, without touching os.environ; a missing file is empty."""
    import io

    from .safefile import read_small_file

    data = read_small_file(path, ENV_FILE_LIMIT, "Scalekit credentials")
    if data is None:
        return {}
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text. Save it as UTF-8.") from None
    dotenv = import_or_explain("dotenv", "python-dotenv")
    values = dotenv.dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if v is not None}


def parse_seconds(
    raw: str | None, name: str, default: float, low: float, high: float, *, allow_low: bool = False
) -> float:
    """A number of seconds from a variable, with a message naming the variable when it is wrong."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    too_low = value < low if allow_low else value <= low
    if not math.isfinite(value) or too_low or value > high:
        bound = "at least" if allow_low else "above"
        raise ConfigurationError(f"{name} must be a number of seconds {bound} {low:g} and up to {high:g}, not {raw!r}.")
    return value


def parse_timeout(raw: str | None) -> float:
    return parse_seconds(raw, TIMEOUT_VAR, DEFAULT_TIMEOUT, 0, 300)


def parse_switch(raw: str | None, name: str, default: bool = True) -> bool:
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be 1 or 0 (on/off), not {raw!r}.")


def env_files(directory: Path, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The .env files read, in order: the state folder's, the skill folder's (original layout), then
    OpenClaw's own (~/.openclaw/.env)."""
    env = os.environ if environ is None else environ
    files = [directory / ".env"]
    if str(directory) == paths.state_dir(env):  # the original layout's .env, until migrated
        files += [Path(p) for p in paths.legacy_files(env) if p.endswith(".env")]
    if paths.under_openclaw(env):
        shared = Path(paths.openclaw_state_dir(env), ".env")
        if shared != files[0]:
            files.append(shared)
    return files


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """One line on stderr, once per process for each message."""
    import sys

    if message not in _warned:
        _warned.add(message)
        print(f"scalekit-auth: warning: {message}", file=sys.stderr)


def where_to_put_credentials(directory: Path, environ: Mapping[str, str] | None = None) -> str:
    """Where a user should put the credentials, in the words of their set-up (never in chat)."""
    env = os.environ if environ is None else environ
    if paths.under_openclaw(env):
        state = paths.openclaw_state_dir(env)
        return (
            f'{state}/openclaw.json (skills.entries."scalekit-auth": "apiKey" for the secret, "env" for '
            f"SCALEKIT_CLIENT_ID and SCALEKIT_ENVIRONMENT_URL), {state}/.env, or {directory / '.env'}"
        )
    return f"{directory / '.env'} or the environment"


def load_settings(directory: Path, environ: Mapping[str, str] | None = None) -> ScalekitSettings:
    """Credentials from the environment, falling back to the .env files (see env_files).

    Raises MissingCredentialsError naming exactly the missing variables.
    """
    env = os.environ if environ is None else environ
    every = env_files(directory, env)
    shared = Path(paths.openclaw_state_dir(env), ".env") if paths.under_openclaw(env) else None
    # Our own files are read (their problems reported); OpenClaw's .env only when a credential is
    # still missing, and a problem there is a warning: it is OpenClaw's file, and only a fallback.
    files = [(path, read_env_file(path)) for path in every if path != shared]
    credential_names = (*ENV_URL_VARS, CLIENT_ID_VAR, CLIENT_SECRET_VAR)
    missing_somewhere = not all(
        any(env.get(n, "").strip() or any(v.get(n, "").strip() for _, v in files) for n in group)
        for group in (ENV_URL_VARS, (CLIENT_ID_VAR,), (CLIENT_SECRET_VAR,))
    )
    if shared is not None and shared in every and missing_somewhere:
        try:
            values = read_env_file(shared)
        except ConfigurationError as err:
            warn_once(f"ignoring {shared}: {err}")
        else:
            files.append((shared, {k: v for k, v in values.items() if k in credential_names}))

    def pick(*names: str) -> tuple[str, str]:
        for name in names:
            value = env.get(name, "").strip()
            if value:
                return value, f"{name} (environment)"
        for path, values in files:
            for name in names:
                value = values.get(name, "").strip()
                if value:
                    return value, f"{name} in {path}"
        return "", ""

    env_url, url_source = pick(*ENV_URL_VARS)
    client_id, _ = pick(CLIENT_ID_VAR)
    client_secret, _ = pick(CLIENT_SECRET_VAR)
    missing = []
    if not client_id:
        missing.append(CLIENT_ID_VAR)
    if not client_secret:
        missing.append(CLIENT_SECRET_VAR)
    if not env_url:
        missing.append(ENV_URL_VARS[0])
    if missing:
        raise MissingCredentialsError(missing, where_to_put_credentials(directory, env))

    def option(name: str) -> str | None:
        return env.get(name) or next((values[name] for _, values in files if values.get(name)), None)

    return ScalekitSettings(
        env_url=normalize_env_url(env_url, url_source),
        client_id=client_id,
        client_secret=client_secret,
        timeout=parse_timeout(option(TIMEOUT_VAR)),
        cache=parse_switch(option(CACHE_VAR), CACHE_VAR),
        cache_margin=parse_seconds(
            option(CACHE_MARGIN_VAR), CACHE_MARGIN_VAR, DEFAULT_CACHE_MARGIN, 0, 86400, allow_low=True
        ),
        cache_ttl=parse_seconds(option(CACHE_TTL_VAR), CACHE_TTL_VAR, DEFAULT_CACHE_TTL, 0, 86400),
        cache_max=parse_count(option(CACHE_MAX_VAR), CACHE_MAX_VAR, DEFAULT_CACHE_MAX, 1, 10_000_000),
        user_verify_url=parse_user_verify_url(option(USER_VERIFY_URL_VAR)),
    )


def parse_count(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    """A whole number from a variable, with a message naming the variable when it is wrong."""
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be a whole number from {low} to {high}, not {raw!r}.")
    return value


def parse_user_verify_url(raw: str | None) -> str:
    """SCALEKIT_USER_VERIFY_URL: empty, `loopback`, or an http(s) URL Scalekit accepts (at most 2048)."""
    value = (raw or "").strip()
    if not value or value.lower() == LOOPBACK:
        return value.lower()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > USER_VERIFY_URL_MAX:
        raise ConfigurationError(
            f"{USER_VERIFY_URL_VAR} must be 'loopback' or an http(s):// URL of at most {USER_VERIFY_URL_MAX} "
            f"characters (the page Scalekit sends the browser to after consent), not {value[:80]!r}."
        )
    return value


def file_signature(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """(mtime_ns, size, inode), or None when the file does not exist: cheap change detection."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return (-1, -1, -1)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def env_file_mode_warning(path: Path) -> str | None:
    """A warning when .env is readable or writable by group or others, else None."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        return f"{path} is readable by other users (mode {mode:03o})"
    return None
