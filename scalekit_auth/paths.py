"""Where things live: the user's state folder, the skill folder, and the agent's private runtime directory.

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
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_HOME",
    "OPENCLAW_SHELL",
    "OPENCLAW_CLI",
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
#: Every variable that changes which folder holds the user's files.
STATE_VARS = (
    SKILL_DIR_VAR,
    "XDG_CONFIG_HOME",
    "HOME",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_HOME",
    "OPENCLAW_SHELL",
    "OPENCLAW_CLI",
)
#: The files a user keeps (never shipped with the skill): they live in the state folder.
STATE_FILES = (".env", "connections.json")


def home(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("HOME", "").strip() or os.path.expanduser("~")


def expand(path: str, environ: Mapping[str, str] | None = None) -> str:
    """An absolute path, with a leading ~ meaning $HOME of `environ`."""
    if path == "~" or path.startswith("~/"):
        path = home(environ) + path[1:]
    return os.path.abspath(path)


def openclaw_state_dir(environ: Mapping[str, str] | None = None) -> str:
    """OpenClaw's state folder, as OpenClaw resolves it (src/config/state-dir.ts).

    $OPENCLAW_STATE_DIR; else ~/.openclaw if it exists; else a legacy ~/.clawdbot if that
    exists; else ~/.openclaw. `~` is $OPENCLAW_HOME when set. (`openclaw --profile X` sets
    OPENCLAW_STATE_DIR=~/.openclaw-X for everything it runs.)
    """
    env = os.environ if environ is None else environ
    override = env.get("OPENCLAW_STATE_DIR", "").strip()
    if override:
        return expand(override, env)
    base = env.get("OPENCLAW_HOME", "").strip() or home(env)
    for name in (".openclaw", ".clawdbot"):
        if os.path.isdir(os.path.join(base, name)):
            return os.path.join(base, name)
    return os.path.join(base, ".openclaw")


def under_openclaw(environ: Mapping[str, str] | None = None) -> bool:
    """True when OpenClaw runs us (it sets OPENCLAW_SHELL/OPENCLAW_CLI) or is set up for this user."""
    env = os.environ if environ is None else environ
    if any(env.get(name, "").strip() for name in ("OPENCLAW_STATE_DIR", "OPENCLAW_SHELL", "OPENCLAW_CLI")):
        return True
    return os.path.isdir(openclaw_state_dir(env))


def state_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where the user's .env and connections.json belong: outside the skill folder, so they survive updates.

    $SCALEKIT_AUTH_DIR if set; under OpenClaw <OpenClaw state folder>/scalekit-auth; else
    $XDG_CONFIG_HOME/scalekit-auth (~/.config/scalekit-auth).
    """
    env = os.environ if environ is None else environ
    override = env.get(SKILL_DIR_VAR, "").strip()
    if override:
        return expand(override, env)
    if under_openclaw(env):
        return os.path.join(openclaw_state_dir(env), "scalekit-auth")
    base = env.get("XDG_CONFIG_HOME", "").strip() or os.path.join(home(env), ".config")
    return os.path.join(expand(base, env), "scalekit-auth")


def legacy_dir() -> str | None:
    """The skill folder itself, when this package sits in one (the original layout kept files there)."""
    if os.path.exists(os.path.join(_PACKAGE_PARENT, "SKILL.md")):
        return _PACKAGE_PARENT
    return None


def _has_state(folder: str) -> bool:
    return any(os.path.lexists(os.path.join(folder, name)) for name in STATE_FILES)


def skill_dir(environ: Mapping[str, str] | None = None) -> str:
    """The folder whose `.env` and `connections.json` are in use.

    The state folder (see state_dir); but while a skill folder in the original layout still
    holds those files and the state folder holds neither, that skill folder (`doctor` warns,
    `scalekit-auth migrate` moves them).
    """
    env = os.environ if environ is None else environ
    state = state_dir(env)
    if env.get(SKILL_DIR_VAR, "").strip():
        return state
    legacy = legacy_dir()
    if legacy is not None and not _has_state(state) and _has_state(legacy):
        return legacy
    return state


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
