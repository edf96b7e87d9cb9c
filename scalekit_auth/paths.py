"""Where things live: the skill folder and the agent's private runtime directory.

Standard library `os` only: the agent client imports this on the fast path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

SKILL_DIR_VAR = "SCALEKIT_AUTH_DIR"
IDENTITY_FILE_VAR = "SCALEKIT_IDENTITY_FILE"
AGENT_VAR = "SCALEKIT_AUTH_AGENT"

#: Every variable that changes which token a call returns; an agent serves a caller only
#: when these (hashed) match its own.
CONTEXT_VARS = (
    SKILL_DIR_VAR,
    "XDG_CONFIG_HOME",
    IDENTITY_FILE_VAR,
    "SCALEKIT_ENV_URL",
    "SCALEKIT_ENVIRONMENT_URL",
    "SCALEKIT_CLIENT_ID",
    "SCALEKIT_CLIENT_SECRET",
    "SCALEKIT_TIMEOUT",
    "SCALEKIT_CACHE",
    "SCALEKIT_CACHE_MARGIN",
    "SCALEKIT_CACHE_TTL",
    "HOME",
)

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def skill_dir(environ: Mapping[str, str] | None = None) -> str:
    """The folder holding `.env` and `connections.json`.

    `SCALEKIT_AUTH_DIR` if set; else the skill folder this package sits in (a drop-in
    copy); else, for a pip install, `$XDG_CONFIG_HOME/scalekit-auth` (~/.config/scalekit-auth).
    """
    env = os.environ if environ is None else environ
    override = env.get(SKILL_DIR_VAR, "").strip()
    if override:
        return os.path.abspath(os.path.expanduser(override))
    if os.path.exists(os.path.join(_PACKAGE_PARENT, "SKILL.md")):  # a skill folder, not site-packages
        return _PACKAGE_PARENT
    base = env.get("XDG_CONFIG_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "scalekit-auth")


def context_fingerprint(environ: Mapping[str, str] | None = None) -> str:
    """A hash of everything that decides which token a call gets (the secret is hashed, never sent)."""
    env = os.environ if environ is None else environ
    parts = [skill_dir(env)] + [f"{name}={env.get(name, '')}" for name in CONTEXT_VARS]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def runtime_dir(environ: Mapping[str, str] | None = None) -> str:
    """The agent's private directory: $XDG_RUNTIME_DIR/scalekit-auth, else /tmp/scalekit-auth-<uid>."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_RUNTIME_DIR", "").strip()
    if base and os.path.isdir(base):
        return os.path.join(base, "scalekit-auth")
    return os.path.join("/tmp", f"scalekit-auth-{os.getuid()}")  # noqa: S108 - private, 0700, owner-checked


def agent_socket(environ: Mapping[str, str] | None = None) -> str:
    """The socket of the agent serving this skill folder (one agent per folder)."""
    folder = skill_dir(environ)
    name = "agent-" + hashlib.sha256(folder.encode()).hexdigest()[:12] + ".sock"
    return os.path.join(runtime_dir(environ), name)


def agent_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(AGENT_VAR, "").strip().lower() not in ("0", "false", "no", "off")
