"""The agent's own name, read from the OpenClaw workspace's IDENTITY.md: the default identifier."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

IDENTITY_FILE_VAR = "SCALEKIT_IDENTITY_FILE"
DEFAULT_IDENTITY_FILE = "~/.openclaw/workspace/IDENTITY.md"
FALLBACK_IDENTIFIER = "agent"
IDENTITY_FILE_LIMIT = 256 * 1024

# "**Name:** Mess" or "- **Name:** Mess" (also "* **Name:**" and "**Name**:").
_NAME_LINE = re.compile(r"^\s*(?:[-*+]\s+)?\*\*\s*Name\s*(?::\s*\*\*|\*\*\s*:)\s*(?P<name>.+?)\s*$", re.IGNORECASE)


def identity_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(IDENTITY_FILE_VAR, "").strip() or DEFAULT_IDENTITY_FILE).expanduser()


def parse_agent_name(text: str) -> str | None:
    """The first `**Name:** <name>` value, lower-cased; None when there is none."""
    for line in text.splitlines():
        match = _NAME_LINE.match(line)
        if match:
            name = match.group("name").strip().strip("*_`").strip().lower()
            if name:
                return name
    return None


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
        return FALLBACK_IDENTIFIER, f"fallback (no '**Name:**' line in {path})"
    return name, str(path)
