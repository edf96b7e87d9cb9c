"""Checking the curl options `scalekit-auth curl URL [OPTIONS]` passes on: the token is for one URL.

curl applies a `-H` header to every URL of the command line, so an extra URL (or an option
that adds one, reads a config file, trusts redirects with the header, or sends the request
somewhere other than the URL's host) would hand the token to someone else. Which options
take a value is read from the installed curl's own `--help all`, so options are told apart
from URLs whatever the curl version.
"""

from __future__ import annotations

import functools
import re
import subprocess

from .errors import UsageError

#: Options that add URLs, read more options from a file, or route the request (and the
#: header) somewhere other than the URL's host.
REFUSED = {
    "--url": "it adds a URL",
    "-:": "it starts another URL",
    "--next": "it starts another URL",
    "-K": "it reads options (and URLs) from a file",
    "--config": "it reads options (and URLs) from a file",
    "--location-trusted": "it sends the token on to whatever host a redirect names",
    "--resolve": "it sends the request to another address than the URL's host",
    "--connect-to": "it sends the request to another host than the URL's",
    "-x": "it sends the request through a proxy",
    "--proxy": "it sends the request through a proxy",
    "--preproxy": "it sends the request through a proxy",
    "--socks4": "it sends the request through a proxy",
    "--socks4a": "it sends the request through a proxy",
    "--socks5": "it sends the request through a proxy",
    "--socks5-hostname": "it sends the request through a proxy",
    "--unix-socket": "it sends the request to a local socket instead of the URL's host",
    "--abstract-unix-socket": "it sends the request to a local socket instead of the URL's host",
    "--doh-url": "it lets another server decide where the URL's host is",
    "-k": "it turns off the check that the server is really the URL's host",
    "--insecure": "it turns off the check that the server is really the URL's host",
    "--proxy-insecure": "it turns off a certificate check",
}

_OPTION = re.compile(r"^\s*(?:(-[^-\s]), )?(--[A-Za-z0-9][\w.-]*)( <[^>]+>)?")


@functools.lru_cache(maxsize=4)
def curl_options(curl: str) -> tuple[frozenset[str], frozenset[str]]:
    """(every option, the options that take a value) of this curl, from `curl --help all`."""
    try:
        text = subprocess.run([curl, "--help", "all"], capture_output=True, text=True, timeout=60, check=False).stdout  # noqa: S603 - our own fixed arguments
    except (OSError, subprocess.SubprocessError):
        text = ""
    known: set[str] = set()
    valued: set[str] = set()
    for line in text.splitlines():
        m = _OPTION.match(line)
        if not m:
            continue
        short, long, value = m.groups()
        for name in filter(None, (short, long)):
            known.add(name)
            if value:
                valued.add(name)
    if not known:  # an unusual curl: fall back to the options curl has had for many years
        valued = {"-d", "--data", "-H", "--header", "-o", "--output", "-X", "--request", "-u", "--user",
                  "-m", "--max-time", "-A", "--user-agent", "-e", "--referer", "-w", "--write-out",
                  "-F", "--form", "-T", "--upload-file", "-b", "--cookie", "-c", "--cookie-jar",
                  "--data-raw", "--data-binary", "--data-urlencode", "--connect-timeout"}  # fmt: skip
        known = valued | {"-s", "--silent", "-S", "--show-error", "-f", "--fail", "-L", "--location", "-i",
                          "--include", "-v", "--verbose", "-I", "--head", "--compressed", "-G", "--get"}  # fmt: skip
    known |= set(REFUSED)
    return frozenset(known), frozenset(valued | {"-x", "--proxy", "-K", "--config", "--url", "--resolve"})


def _refuse(option: str, why: str) -> UsageError:
    return UsageError(
        f"curl option {option} is not allowed here: {why}, and the token must go only to the URL it is for. "
        "Run curl yourself with `scalekit-auth header SERVICE | curl -H @- ...` if you really need it."
    )


def check_curl_args(args: list[str], curl: str) -> None:
    """Raise UsageError for any argument that is a second URL or an option in REFUSED."""
    known, valued = curl_options(curl)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            raise UsageError(
                f"curl gets one URL: the one the token is for (got another argument: {arg!r}). "
                "Fetch other URLs with separate commands."
            )
        if arg.startswith("--"):
            name = arg
            if name in REFUSED:
                raise _refuse(name, REFUSED[name])
            if name not in known and not (name.startswith("--no-") and "--" + name[5:] in known):
                raise UsageError(f"unknown curl option {name} (see curl --help all).")
            i += 2 if name in valued else 1
            continue
        # -sSL, -o file, -ofile: a cluster of short options, the last may take a value
        for j, letter in enumerate(arg[1:], start=1):
            name = "-" + letter
            if name in REFUSED:
                raise _refuse(name, REFUSED[name])
            if name not in known:
                raise UsageError(f"unknown curl option {name} (see curl --help all).")
            if name in valued:
                if j == len(arg) - 1:
                    i += 1  # the value is the next argument
                break
        i += 1
