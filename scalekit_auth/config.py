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

from .errors import ConfigurationError, MissingCredentialsError, import_or_explain

SKILL_DIR_VAR = "SCALEKIT_AUTH_DIR"
TIMEOUT_VAR = "SCALEKIT_TIMEOUT"
ENV_URL_VARS = ("SCALEKIT_ENV_URL", "SCALEKIT_ENVIRONMENT_URL")
CLIENT_ID_VAR = "SCALEKIT_CLIENT_ID"
CLIENT_SECRET_VAR = "SCALEKIT_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
DEFAULT_TIMEOUT = 10.0

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def skill_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding `.env` and `connections.json`.

    `SCALEKIT_AUTH_DIR` if set; else the skill folder this package sits in (a drop-in
    copy); else, for a pip install, `$XDG_CONFIG_HOME/scalekit-auth` (~/.config/scalekit-auth).
    """
    env = os.environ if environ is None else environ
    override = env.get(SKILL_DIR_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    if (_PACKAGE_PARENT / "scalekit_helper.py").exists():
        return _PACKAGE_PARENT
    base = env.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(base) / "scalekit-auth"


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
            f"{source} is not a valid URL ({err}): expected https://<your-env>.scalekit.com"
        ) from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(
            f"{source} must look like https://<your-env>.scalekit.com (got a value without "
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

    def __repr__(self) -> str:
        return (
            f"ScalekitSettings(env_url={self.env_url!r}, client_id={self.client_id!r}, "
            f"client_secret='[REDACTED]', timeout={self.timeout!r})"
        )


def read_env_file(path: Path) -> dict[str, str]:
    """Values from a .env file, without touching os.environ; a missing file is empty."""
    if not path.is_file():
        return {}
    dotenv = import_or_explain("dotenv", "python-dotenv")
    try:
        values = dotenv.dotenv_values(path, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"Cannot read {path}: {err.__class__.__name__}. Save it as UTF-8 text.") from None
    return {k: v for k, v in values.items() if v is not None}


def parse_timeout(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0 or value > 300:
        raise ConfigurationError(f"{TIMEOUT_VAR} must be a number of seconds between 0 and 300, not {raw!r}.")
    return value


def load_settings(directory: Path, environ: Mapping[str, str] | None = None) -> ScalekitSettings:
    """Credentials from the environment, falling back to `directory/.env`.

    Raises MissingCredentialsError naming exactly the missing variables.
    """
    env = os.environ if environ is None else environ
    env_file = directory / ".env"
    from_file = read_env_file(env_file)

    def pick(*names: str) -> tuple[str, str]:
        for name in names:
            value = env.get(name, "").strip()
            if value:
                return value, f"{name} (environment)"
        for name in names:
            value = from_file.get(name, "").strip()
            if value:
                return value, f"{name} in {env_file}"
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
        raise MissingCredentialsError(missing, str(env_file))
    timeout_raw = env.get(TIMEOUT_VAR) or from_file.get(TIMEOUT_VAR)
    return ScalekitSettings(
        env_url=normalize_env_url(env_url, url_source),
        client_id=client_id,
        client_secret=client_secret,
        timeout=parse_timeout(timeout_raw),
    )
