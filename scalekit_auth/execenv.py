"""Running a command with tokens in its environment (never in argv). Standard library only."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Iterator, Mapping

from .errors import ConfigurationError, UsageError

#: What no child process ever inherits: every SCALEKIT_* variable (the client secret and ID, the
#: environment URL, emulator keys, our own switches), whatever put it in our environment (.env,
#: OpenClaw's apiKey, the shell). A child gets the tokens it was asked for, never the master secret.
CHILD_DROPPED_PREFIX = "SCALEKIT_"


def child_environment(
    variables: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a child process: `base` (default os.environ) without any SCALEKIT_*
    variable, plus `variables` (the tokens asked for)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.upper().startswith(CHILD_DROPPED_PREFIX)
    }
    env.update(variables or {})
    return env


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Variables that the dynamic loader, a shell, a language runtime or a common tool reads as
#: instructions or paths. A token there is at best lost and at worst printed (LD_DEBUG,
#: PS4) or executed; and the command's own setting is overwritten. Matched exactly ...
RESERVED_NAMES = frozenset(
    """PATH IFS ENV BASH_ENV CDPATH PS1 PS2 PS3 PS4 SHELLOPTS BASHOPTS GLOBIGNORE PROMPT_COMMAND
    HOME SHELL USER LOGNAME TMPDIR TEMP TMP PWD OLDPWD TERM TZ LANG LANGUAGE DISPLAY EDITOR VISUAL PAGER
    GCONV_PATH LOCPATH NLSPATH HOSTALIASES RESOLV_HOST_CONF MALLOC_CHECK_ MALLOC_PERTURB_
    PERL5LIB PERL5OPT PERLLIB RUBYOPT RUBYLIB NODE_OPTIONS NODE_PATH JAVA_TOOL_OPTIONS _JAVA_OPTIONS
    JDK_JAVA_OPTIONS CLASSPATH GEM_HOME GEM_PATH HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY http_proxy
    https_proxy all_proxy no_proxy SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE
    CURL_HOME XDG_RUNTIME_DIR XDG_CONFIG_HOME SUDO_ASKPASS SSH_ASKPASS SSH_AUTH_SOCK""".split()
)
#: ... or by prefix (compared case-insensitively: some tools, like npm, read their variables so).
RESERVED_PREFIXES = (
    "LD_", "DYLD_", "PYTHON", "BASH_FUNC_", "LC_", "GIT_", "GLIBC_", "SCALEKIT_", "NPM_CONFIG_", "SSLKEYLOG",
    "OPENSSL_", "KUBE", "CARGO_", "RUSTC_",
)  # fmt: skip
#: A token's variable must say what it holds: GH_TOKEN, NOTION_API_KEY, SLACK_BOT_TOKEN, ...
#: Names that no program reads as an instruction (SSLKEYLOGFILE, BROWSER, LESSOPEN, ... all fail this).
TOKEN_SUFFIXES = ("_TOKEN", "_KEY", "_SECRET", "_PAT", "_APIKEY", "_CREDENTIAL", "_CREDENTIALS", "_AUTH", "_PASSWORD")


@contextlib.contextmanager
def scalekit_variables_hidden() -> Iterator[None]:
    """For a library that starts a child from os.environ itself (webbrowser): the SCALEKIT_*
    variables are out of os.environ meanwhile. Single-threaded callers only (the CLI's demo)."""
    hidden = {k: os.environ.pop(k) for k in list(os.environ) if k.upper().startswith(CHILD_DROPPED_PREFIX)}
    try:
        yield
    finally:
        os.environ.update(hidden)


def check_env_name(name: str, spec: str) -> None:
    """Refuse a name that is not a plain variable name, or one something else interprets."""
    if not _ENV_NAME.match(name):
        raise ConfigurationError(
            f"--env {spec}: {name!r} is not a valid environment variable name (letters, digits and _, "
            "not starting with a digit)."
        )
    if name in RESERVED_NAMES or name.upper().startswith(RESERVED_PREFIXES):
        raise ConfigurationError(
            f"--env {spec}: {name} is read by the system, the shell or a language runtime; a token there "
            "could leak or break the command. Choose a name of your own, e.g. --env MY_TOKEN."
        )
    if not name.upper().endswith(TOKEN_SUFFIXES):
        raise ConfigurationError(
            f"--env {spec}: name the variable for what it holds, ending in _TOKEN, _KEY or _SECRET "
            "(e.g. GH_TOKEN, NOTION_API_KEY): other names may be read by some program as an instruction."
        )


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
        check_env_name(name, spec)
        names[service] = name
    taken: dict[str, str] = {}
    for service, name in names.items():
        if name in taken:
            raise UsageError(
                f"'{taken[name]}' and '{service}' would both go into ${name}, and one token would be lost. "
                f"Give one its own name: --env {service}=OTHER_TOKEN."
            )
        taken[name] = service
    return names


def exec_with(cmd: list[str], variables: Mapping[str, str]) -> int:
    """Replace this process with `cmd`, adding `variables` to its environment.

    Returns only when `cmd` cannot be started: 127 (not found) or 126 (not executable).
    """
    env = child_environment(variables)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(cmd[0], cmd, env)  # noqa: S606 - the exit code and signals become cmd's
    except FileNotFoundError:
        print(f"scalekit-auth: command not found: {cmd[0]}", file=sys.stderr)
        return 127  # what a shell returns
    except OSError as err:
        why = {
            errno.EACCES: "permission denied (not executable, or a directory)",
            errno.E2BIG: "argument list too long",
            errno.ENOEXEC: "not a program this system can run (exec format error)",
            errno.ENOTDIR: "a part of the path is not a directory",
            errno.ENAMETOOLONG: "the name is too long",
            errno.ELOOP: "too many symbolic links",
        }.get(err.errno or 0, err.strerror or "cannot be started")
        print(f"scalekit-auth: cannot run {cmd[0][:200]}: {why}", file=sys.stderr)
        return 127 if err.errno == errno.ENOTDIR else 126
    return 1  # pragma: no cover - execvpe does not return
