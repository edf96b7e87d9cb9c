"""How the user can run the `scalekit-auth` command: every message that names a command asks here.

In a drop-in copy of the skill folder `scalekit-auth` is not on PATH (`bash: scalekit-auth: command
not found`), so messages, `doctor` fixes and `--help` name the script by its absolute path, the
way SKILL.md runs it: `python3 /abs/path/to/skill/scalekit-auth config gmail ...`. Only when
`scalekit-auth` on PATH is this very copy (a symlink to the script, or the console script of a
pip-installed package) do they say `scalekit-auth ...`.

Standard library only, and cheap: it runs on error paths of the shell fast path too.
"""

from __future__ import annotations

import os
import shlex

NAME = "scalekit-auth"
#: The folder holding the package: the skill folder in a drop-in copy (with the scripts beside it).
SKILL_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def script_path() -> str:
    """The `scalekit-auth` script of this copy (it may not exist: a pip-installed package has none)."""
    return os.path.join(SKILL_FOLDER, NAME)


def runnable(environ: dict[str, str] | None = None) -> str:
    """The words that run this copy's command line from any folder: `scalekit-auth` when that name on
    PATH is this copy, else `python3 /abs/path/scalekit-auth` (else `python3 -m scalekit_auth`)."""
    import shutil

    path = (os.environ if environ is None else environ).get("PATH", os.defpath)
    on_path = shutil.which(NAME, path=path)
    script = script_path()
    has_script = os.path.isfile(script)
    if on_path and (not has_script or os.path.realpath(on_path) == os.path.realpath(script)):
        return NAME
    if has_script:
        return f"python3 {shlex.quote(script)}"
    return "python3 -m scalekit_auth"


def command(*words: str) -> str:
    """`scalekit-auth WORDS...` as the user can type it here, e.g. command("config", "gmail", "<connection_name>")."""
    return " ".join([runnable(), *words])
