"""The agent's own name, read from its OpenClaw workspace's IDENTITY.md: the default identifier.

The workspace and the parsing follow OpenClaw itself (2026.9: src/agents/identity-file.ts,
src/agents/workspace-default-path.ts), so the name here is the name OpenClaw shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from . import paths

IDENTITY_FILE_VAR = paths.IDENTITY_FILE_VAR
FALLBACK_IDENTIFIER = "agent"
#: OpenClaw reads IDENTITY.md up to 4 MiB; so do we, so that both see the same name.
IDENTITY_FILE_LIMIT = 4 * 1024 * 1024
#: Every variable (besides the working directory) that changes which IDENTITY.md is read.
IDENTITY_VARS = (
    IDENTITY_FILE_VAR,
    "OPENCLAW_WORKSPACE_DIR",
    "OPENCLAW_STATE_DIR",
    "OPENCLAW_PROFILE",
    "OPENCLAW_HOME",
    "OPENCLAW_SHELL",
    "HOME",
)

# The template's placeholder answers, as OpenClaw normalises them (not names).
_PLACEHOLDERS = frozenset(
    {
        "not set yet",
        "pick something you like",
        "ai? robot? familiar? ghost in the machine? something weirder?",
        "how do you come across? sharp? warm? chaotic? calm?",
        "your signature - pick one that feels right",
        "workspace-relative path, http(s) url, or data uri",
    }
)
_EDGE_MARKS = re.compile(r"^[\s*_`]+|[\s*_`]+$")


def identity_file(environ: Mapping[str, str] | None = None) -> Path:
    """SCALEKIT_IDENTITY_FILE if set, else IDENTITY.md in the agent's workspace (see paths.identity_path)."""
    return Path(paths.identity_path(environ)[0])


def _is_placeholder(value: str) -> bool:
    normal = _EDGE_MARKS.sub("", value)
    if normal.startswith("(") and normal.endswith(")"):
        normal = normal[1:-1].strip()
    normal = re.sub(r"\s+", " ", normal.replace("\u2013", "-").replace("\u2014", "-")).lower()
    return normal in _PLACEHOLDERS


def parse_agent_name(text: str) -> str | None:
    """The agent's name as OpenClaw reads it, lower-cased; None when there is none.

    Each line `Name: X` counts, with or without bold or a list dash (`- **Name:** X`,
    `**Name**: X`); the value must be on the same line; the template's placeholders are
    not names; the last one wins.
    """
    name = None
    for line in text.splitlines():
        cleaned = re.sub(r"^\s*-\s*", "", line.strip())
        label, colon, value = cleaned.partition(":")
        if not colon or re.sub(r"[*_`]", "", label).strip().lower() != "name":
            continue
        value = _EDGE_MARKS.sub("", value)
        if value and not _is_placeholder(value):
            name = value
    return name.lower() if name else None


def agent_name(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(identifier, where it came from): the IDENTITY.md name, else the fixed fallback."""
    from .safefile import read_small_file

    path = identity_file(environ)
    data = read_small_file(path, IDENTITY_FILE_LIMIT, "the agent's identity, for the default identifier")
    if data is None:
        return FALLBACK_IDENTIFIER, f"fallback ({path} not found)"
    text = data.decode("utf-8-sig", errors="replace")
    name = parse_agent_name(text)
    if name is None:
        return FALLBACK_IDENTIFIER, f"fallback (no 'Name:' line with a name in {path})"
    return name, str(path)
