"""Running a command with tokens in its environment (never in argv). Standard library only."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping

from .errors import ConfigurationError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_name_for(service: str) -> str:
    """gmail -> GMAIL_TOKEN, google-calendar -> GOOGLE_CALENDAR_TOKEN."""
    return re.sub(r"[^A-Za-z0-9]", "_", service.strip()).upper() + "_TOKEN"


def env_names(services: list[str], overrides: list[str]) -> dict[str, str]:
    """Service -> variable name, from defaults and `--env NAME` / `--env SERVICE=NAME`."""
    names = {s: env_name_for(s) for s in services}
    for spec in overrides:
        service, sep, name = spec.partition("=")
        if not sep:
            if len(services) != 1:
                raise ConfigurationError(
                    f"--env {spec}: with several services, say which one: --env SERVICE=NAME (e.g. --env gmail={spec})."
                )
            service, name = services[0], spec
        if service not in names:
            raise ConfigurationError(
                f"--env {spec}: '{service}' is not one of the services given ({', '.join(names)})."
            )
        if not _ENV_NAME.match(name):
            raise ConfigurationError(f"--env {spec}: '{name}' is not a valid environment variable name.")
        names[service] = name
    return names


def exec_with(cmd: list[str], variables: Mapping[str, str]) -> int:
    """Replace this process with `cmd`, adding `variables` to its environment.

    Returns only when `cmd` cannot be started: 127 (not found) or 126 (not executable).
    """
    env = dict(os.environ)
    env.update(variables)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(cmd[0], cmd, env)  # noqa: S606 - the exit code and signals become cmd's
    except FileNotFoundError:
        print(f"scalekit-auth: command not found: {cmd[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"scalekit-auth: permission denied: {cmd[0]}", file=sys.stderr)
        return 126
    return 1  # pragma: no cover - execvpe does not return
