"""Checking the curl options `scalekit-auth curl URL [OPTIONS]` passes on: the token is for one URL.

curl applies a `-H` header to every URL of the command line, so an extra URL (or an option
that adds one, reads a config file, trusts redirects with the header, sends the request
somewhere other than the URL's host, or writes the request to a file) would hand the token
to someone else. Only options on an allowlist are passed on.
"""

from __future__ import annotations

from .display import printable
from .errors import UsageError
from .invocation import command

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
    "-v": "it prints the request headers, token included",
    "--verbose": "it prints the request headers, token included",
    "--trace": "it writes the request, token included, to a file",
    "--trace-ascii": "it writes the request, token included, to a file",
    "--libcurl": "it writes the request, token included, to a file",
    "--stderr": "it redirects curl's messages to a file",
    "--no-globoff": "it lets the URL expand into several hosts",
    "-g": "globbing is already off",
}

#: The options that may be passed on: {name: takes a value}. Everything else is refused: curl has
#: hundreds of options (and accepts unambiguous prefixes of them), and many reroute the request
#: (--proxy1.0, ...), turn globbing back on (--no-globoff), or write the header to a file or the
#: terminal (--trace, --libcurl, -v, --stderr). An allowlist cannot miss one.
ALLOWED: dict[str, bool] = {
    "-s": False, "--silent": False, "-S": False, "--show-error": False, "-f": False, "--fail": False,
    "--fail-with-body": False, "--fail-early": False, "-L": False, "--location": False, "-i": False,
    "--include": False, "-I": False, "--head": False, "-G": False, "--get": False, "--compressed": False,
    "--no-progress-meter": False, "-#": False, "--progress-bar": False, "--create-dirs": False,
    "-O": False, "--remote-name": False, "-J": False, "--remote-header-name": False, "--http1.1": False,
    "--http2": False, "--tlsv1.2": False, "--tlsv1.3": False, "--ssl-reqd": False, "--raw": False,
    "-X": True, "--request": True, "-d": True, "--data": True, "--data-raw": True, "--data-binary": True,
    "--data-urlencode": True, "--data-ascii": True, "--json": True, "-F": True, "--form": True,
    "--form-string": True, "-H": True, "--header": True, "-A": True, "--user-agent": True, "-e": True,
    "--referer": True, "-o": True, "--output": True, "--output-dir": True, "-w": True, "--write-out": True,
    "-m": True, "--max-time": True, "--connect-timeout": True, "--retry": True, "--retry-delay": True,
    "--retry-max-time": True, "--max-redirs": True, "-T": True, "--upload-file": True, "-b": True,
    "--cookie": True, "-c": True, "--cookie-jar": True, "-r": True, "--range": True, "-C": True,
    "--continue-at": True, "--limit-rate": True, "--max-filesize": True, "--expect100-timeout": True,
}  # fmt: skip


def _refuse(option: str, why: str) -> UsageError:
    return UsageError(
        f"curl option {option} is not allowed here: {why}, and the token must go only to the URL it is for. "
        f"Run curl yourself with `{command('header', 'SERVICE')} | curl -H @- ...` if you really need it."
    )


def check_curl_args(args: list[str], curl: str | None = None) -> None:
    """Raise UsageError for a second URL, an option in REFUSED (with its reason), or any option
    not in ALLOWED. (`curl` is accepted for compatibility; the check does not run it.)"""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            raise UsageError(
                f"curl gets one URL: the one the token is for (got another argument: {printable(arg, False)!r}). "
                "Fetch other URLs with separate commands."
            )
        if arg.startswith("--"):
            _check_option(arg)
            i += 2 if ALLOWED[arg] else 1
            continue
        # -sSL, -o file, -ofile: a cluster of short options, the last may take a value
        for j, letter in enumerate(arg[1:], start=1):
            name = "-" + letter
            _check_option(name)
            if ALLOWED[name]:
                if j == len(arg) - 1:
                    i += 1  # the value is the next argument
                break
        i += 1


def _check_option(name: str) -> None:
    if name in REFUSED:
        raise _refuse(name, REFUSED[name])
    if name not in ALLOWED:
        raise UsageError(
            f"curl option {printable(name, False)} is not passed on by {command('curl')} (it allows common "
            "request options such as -s, -f, -L, -X, -d, -H, -o, --json, -m). For anything else: "
            f"{command('header', 'SERVICE')} | curl -H @- ..."
        )
