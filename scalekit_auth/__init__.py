"""scalekit-auth: fresh OAuth tokens from Scalekit's token vault, never written to disk.

Every entry point (get_token.py, scalekit-auth, `import scalekit_helper`, `python3 -m
scalekit_auth`) imports this file first, so the Python version is checked here, before
anything that needs a newer Python loads. Keep this file parseable by Python 2.7 and 3.x:
no f-strings, no annotations.
"""

import sys

__version__ = "0.1.0"

#: The oldest CPython scalekit-auth runs on. scalekit-sdk-python 2.x fails to import on 3.10
#: (typing.Optional of a protobuf enum wrapper) and its grpcio-status needs 3.10 or newer.
MIN_PYTHON = (3, 11)

#: Exit code for a configuration problem (the CLI's ExitCode.CONFIGURATION).
_EXIT_CONFIGURATION = 3

if sys.version_info[:2] < MIN_PYTHON:
    sys.stderr.write(
        "scalekit-auth: needs Python %d.%d or newer, but this is Python %s (%s). "
        "Install Python %d.%d+ (python.org, your package manager, or `pyenv install 3.13`) "
        "and run scalekit-auth with it, e.g. `python3.13 get_token.py gmail`.\n"
        % (
            MIN_PYTHON[0],
            MIN_PYTHON[1],
            sys.version.split()[0],
            sys.executable or "unknown interpreter",
            MIN_PYTHON[0],
            MIN_PYTHON[1],
        )
    )
    raise SystemExit(_EXIT_CONFIGURATION)
