"""Where the skill keeps its files, and the settings (the Scalekit client credentials and options).

Every setting is looked up the same way, by `settings_sources` and `find`: the first source
that sets it wins (the process environment, then the .env files), under any of its names.
`.env` is read, never written, and never copied into `os.environ` (so child processes do not
inherit the client secret).
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
from .cache import DEFAULT_MARGIN as DEFAULT_CACHE_MARGIN
from .cache import DEFAULT_MAX_ENTRIES as DEFAULT_CACHE_MAX
from .cache import DEFAULT_TTL as DEFAULT_CACHE_TTL
from .errors import ConfigurationError, MissingCredentialsError

SKILL_DIR_VAR = paths.SKILL_DIR_VAR
TIMEOUT_VAR = "SCALEKIT_TIMEOUT"
CACHE_VAR = "SCALEKIT_CACHE"
CACHE_MARGIN_VAR = "SCALEKIT_CACHE_MARGIN"
CACHE_TTL_VAR = "SCALEKIT_CACHE_TTL"
CACHE_MAX_VAR = "SCALEKIT_CACHE_MAX"
CLIENT_ID_VAR = "SCALEKIT_CLIENT_ID"
CLIENT_SECRET_VAR = "SCALEKIT_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
USER_VERIFY_URL_VAR = "SCALEKIT_USER_VERIFY_URL"
#: SCALEKIT_USER_VERIFY_URL=loopback: a waiting call verifies the user itself, on 127.0.0.1.
LOOPBACK = "loopback"
#: Scalekit's limit for user_verify_url (buf.validate in the SDK's descriptors).
USER_VERIFY_URL_MAX = 2048
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Setting:
    """One setting and the names it is accepted under, the documented name first."""

    names: tuple[str, ...]
    credential: bool = False

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def label(self) -> str:
        """How every message names it: `SCALEKIT_ENVIRONMENT_URL (or SCALEKIT_ENV_URL)`."""
        others = self.names[1:]
        return f"{self.name} (or {', '.join(others)})" if others else self.name


#: Scalekit's API reference says SCALEKIT_ENVIRONMENT_URL, its AgentKit pages SCALEKIT_ENV_URL: both count.
ENV_URL = Setting(("SCALEKIT_ENVIRONMENT_URL", "SCALEKIT_ENV_URL"), credential=True)
CLIENT_ID = Setting((CLIENT_ID_VAR,), credential=True)
CLIENT_SECRET = Setting((CLIENT_SECRET_VAR,), credential=True)
TIMEOUT = Setting((TIMEOUT_VAR,))
CACHE = Setting((CACHE_VAR,))
CACHE_MARGIN = Setting((CACHE_MARGIN_VAR,))
CACHE_TTL = Setting((CACHE_TTL_VAR,))
CACHE_MAX = Setting((CACHE_MAX_VAR,))
USER_VERIFY_URL = Setting((USER_VERIFY_URL_VAR,))
#: Every setting, in the order messages list them.
SETTINGS = (ENV_URL, CLIENT_ID, CLIENT_SECRET, TIMEOUT, CACHE, CACHE_MARGIN, CACHE_TTL, CACHE_MAX, USER_VERIFY_URL)
#: The three a Scalekit client cannot do without.
CREDENTIALS = tuple(s for s in SETTINGS if s.credential)
#: Every variable the settings are read from (a change in any of them means re-reading).
SETTINGS_VARS = tuple(name for setting in SETTINGS for name in setting.names)


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
    from .bootstrap import import_or_explain

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
    """The .env files read, in order: the state folder's, the skill folder's (original layout; never
    once `migrate` has moved it, even when it could not delete it: paths.legacy_files), then
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
            f"{CLIENT_ID.label} and {ENV_URL.label}), {state}/.env, or {directory / '.env'}"
        )
    return f"{directory / '.env'} or the environment"


ENVIRONMENT = "the environment"


@dataclass(frozen=True)
class Source:
    """One place settings are read from: the process environment, or a .env file."""

    where: str  # ENVIRONMENT, or the file's path
    values: Mapping[str, str]


@dataclass(frozen=True)
class Found:
    """A setting's value, and the name and source it came from."""

    value: str
    name: str
    source: str

    def __str__(self) -> str:
        return f"{self.name} from {self.source}"


def settings_sources(
    directory: Path,
    environ: Mapping[str, str] | None = None,
    problems: list[tuple[Path, ConfigurationError]] | None = None,
) -> list[Source]:
    """Where settings are looked up, the first source first (see `find`).

    The process environment; the state folder's .env; the skill folder's .env (original layout,
    until `migrate`); and, only while a credential is still missing from those, the credentials
    (nothing else) in OpenClaw's own .env. A .env that cannot be read raises ConfigurationError,
    except OpenClaw's, which is only a fallback and not ours: it is skipped with a warning. With
    `problems`, every unreadable .env is added there instead and skipped (doctor lists them all).
    """
    env = os.environ if environ is None else environ
    every = env_files(directory, env)
    shared = Path(paths.openclaw_state_dir(env), ".env") if paths.under_openclaw(env) else None
    sources = [Source(ENVIRONMENT, env)]
    for path in every:
        if path == shared:
            continue
        try:
            sources.append(Source(str(path), read_env_file(path)))
        except ConfigurationError as err:
            if problems is None:
                raise
            problems.append((path, err))
    missing = any(not _present(sources, setting) for setting in CREDENTIALS)
    if shared is not None and shared in every and missing:
        try:
            values = read_env_file(shared)
        except ConfigurationError as err:
            if problems is None:
                warn_once(f"ignoring {shared}: {err}")
            else:
                problems.append((shared, err))
        else:
            names = {name for setting in CREDENTIALS for name in setting.names}
            sources.append(Source(str(shared), {k: v for k, v in values.items() if k in names}))
    return sources


def _present(sources: list[Source], setting: Setting) -> bool:
    return any(source.values.get(name, "").strip() for source in sources for name in setting.names)


def find(sources: list[Source], setting: Setting) -> Found | None:
    """The setting from the first source that sets it (under any of its names), or None.

    The source decides, not the name: a value in the environment wins over one in .env whichever
    name each uses. One source giving two different values under two names is an error (which
    one was meant?); the same value twice is fine, and reported under the documented name.
    """
    for source in sources:
        named = [(name, value) for name in setting.names if (value := source.values.get(name, "").strip())]
        if not named:
            continue
        name, value = named[0]
        if len({v.rstrip("/") for _, v in named}) > 1:
            # URLs are shown; anything else could be a secret pasted on the wrong line, so it is not.
            shown = " and ".join(
                f"{n}={v[:200]!r}" if v.startswith(("https://", "http://")) else f"{n} (not a URL)" for n, v in named
            )
            raise ConfigurationError(
                f"{shown} in {source.where} are two different values for one setting; keep one "
                f"({setting.name} is the documented name) and remove the other."
            )
        return Found(value, name, source.where)
    return None


def load_settings(directory: Path, environ: Mapping[str, str] | None = None) -> ScalekitSettings:
    """The settings, each from the first source that sets it (see settings_sources and find).

    Raises MissingCredentialsError naming exactly the missing credentials.
    """
    env = os.environ if environ is None else environ
    sources = settings_sources(directory, env)
    found = {setting: find(sources, setting) for setting in SETTINGS}
    missing = [setting for setting in CREDENTIALS if found[setting] is None]
    if missing:
        raise MissingCredentialsError(
            [s.name for s in missing], where_to_put_credentials(directory, env), labels=[s.label for s in missing]
        )

    def value(setting: Setting) -> str | None:
        hit = found[setting]
        return None if hit is None else hit.value

    url = found[ENV_URL]
    assert url is not None
    return ScalekitSettings(
        env_url=normalize_env_url(url.value, str(url)),
        client_id=value(CLIENT_ID) or "",
        client_secret=value(CLIENT_SECRET) or "",
        timeout=parse_timeout(value(TIMEOUT)),
        cache=parse_switch(value(CACHE), CACHE_VAR),
        cache_margin=parse_seconds(
            value(CACHE_MARGIN), CACHE_MARGIN_VAR, DEFAULT_CACHE_MARGIN, 0, 86400, allow_low=True
        ),
        cache_ttl=parse_seconds(value(CACHE_TTL), CACHE_TTL_VAR, DEFAULT_CACHE_TTL, 0, 86400),
        cache_max=parse_count(value(CACHE_MAX), CACHE_MAX_VAR, DEFAULT_CACHE_MAX, 1, 10_000_000),
        user_verify_url=parse_user_verify_url(value(USER_VERIFY_URL)),
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
