"""A private Python environment for the skill's packages, made on first use.

`python3 get_token.py gmail` must work on a Python that refuses `pip install` (PEP 668:
Debian, Ubuntu, Homebrew) and without the user making a virtual environment. When one of the
skill's packages is missing, this module makes a virtual environment of the same interpreter
in the per-user cache (`~/.cache/scalekit-auth/python-3.X-<id>`), installs
requirements.txt into it once, and adds its site-packages to the front of `sys.path`.
Later runs only check a stamp file. It never runs inside someone else's virtual environment
(that one is theirs to manage) and it can be turned off with SCALEKIT_AUTH_AUTOINSTALL=0.

Standard library only: it runs precisely when the packages are missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError, MissingDependencyError

AUTOINSTALL_VAR = "SCALEKIT_AUTH_AUTOINSTALL"
#: Top-level modules of requirements.txt -> the package that provides each.
REQUIRED_MODULES = {
    "scalekit": "scalekit-sdk-python",
    "dotenv": "python-dotenv",
    "requests": "requests",
    "filelock": "filelock",
    "cryptography": "cryptography",
    "mcp": "mcp",
}
REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "requirements.txt")
STAMP = ".scalekit-auth-installed"
#: A first install downloads about 15 MB; a slow network can take minutes.
INSTALL_TIMEOUT = 900.0


#: True in processes of our own (the command line, get_token.py, the agent, the MCP server): only
#: they may put the private environment on their own sys.path. A host that imported
#: scalekit_helper keeps its sys.path and modules untouched; what it cannot import is done by
#: the token agent, which runs in the private environment (see agent_python, sources.Road).
OWN_PROCESS = False


def claim_process() -> None:
    """Called by our entry points: this process is ours, its sys.path may take the private packages."""
    global OWN_PROCESS
    OWN_PROCESS = True


def packages_here() -> bool:
    """True when this interpreter can import every package the skill needs, as it is."""
    import importlib.util

    return all(importlib.util.find_spec(module) is not None for module in REQUIRED_MODULES)


def agent_python(environ: Mapping[str, str] | None = None) -> str:
    """The interpreter the token agent runs under: this one when it has the packages, else the
    private environment's (made now if needed; this process's sys.path is not touched)."""
    if packages_here():
        return sys.executable
    if not enabled(environ):
        raise missing_dependency("scalekit-sdk-python")
    folder = private_env(environ)
    if not _is_ready(folder):
        _install(folder, os.path.dirname(folder))
    return _python(folder)


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(AUTOINSTALL_VAR, "").strip().lower() not in ("0", "false", "no", "off")


def in_foreign_venv() -> bool:
    """True inside a virtual environment that is not our private one (its packages are its owner's)."""
    return sys.prefix != sys.base_prefix and not os.path.exists(os.path.join(sys.prefix, STAMP))


def env_dir(environ: Mapping[str, str] | None = None) -> str:
    """The private environment of this interpreter and this requirements.txt (one per pair, so copies
    of the skill with other requirements, or an update, never rebuild an environment in use)."""
    env = os.environ if environ is None else environ
    cache = env.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    base = os.path.realpath(sys._base_executable if hasattr(sys, "_base_executable") else sys.executable)
    tag = hashlib.sha256(base.encode()).hexdigest()[:8]
    folder = f"python-{sys.version_info[0]}.{sys.version_info[1]}-{tag}-{_requirements_hash()[:8]}"
    return os.path.join(cache, "scalekit-auth", folder)


def _requirements_hash() -> str:
    with open(REQUIREMENTS, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _site_packages(folder: str) -> str:
    if os.name == "nt":
        return os.path.join(folder, "Lib", "site-packages")
    return os.path.join(folder, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")


def _python(folder: str) -> str:
    return os.path.join(folder, "Scripts", "python.exe") if os.name == "nt" else os.path.join(folder, "bin", "python")


def _check_private(path: str, *, fix_mode: bool = False) -> None:
    """Refuse a folder another user could have planted code in (we would import from it).

    With `fix_mode` (a folder inside our own private parent, which nobody else can reach),
    a group/other-writable mode left by a loose umask is tightened instead of refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ConfigurationError(f"{path} is not a plain folder; remove it so scalekit-auth can make its own.")
    if not hasattr(os, "getuid"):
        return
    if st.st_uid == os.getuid() and st.st_mode & 0o022 and fix_mode:
        os.chmod(path, 0o700)
        return
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ConfigurationError(
            f"{path} belongs to another user or others can write to it; scalekit-auth will not load packages "
            f"from it. Remove it (rm -rf {path}) and run again."
        )


def _is_ready(folder: str) -> bool:
    """Complete: the stamp is written last, after every package installed."""
    return os.path.exists(os.path.join(folder, STAMP))


def activate(folder: str) -> None:
    """Put the private environment's packages first on sys.path (processing its .pth files)."""
    import site

    packages = _site_packages(folder)
    if packages in sys.path:
        return
    before = list(sys.path)
    site.addsitedir(packages)
    added = [p for p in sys.path if p not in before]
    sys.path[:] = added + before
    import importlib

    importlib.invalidate_caches()


def provide(module: str, environ: Mapping[str, str] | None = None) -> bool:
    """Make `module` importable from the private environment; False when that is not our job.

    Returns False (the caller explains the missing package) when auto-install is off, the
    module is not one of ours, or we run inside someone else's virtual environment.
    Raises ConfigurationError when the environment cannot be made.
    """
    top = module.split(".", 1)[0]
    if not OWN_PROCESS or top not in REQUIRED_MODULES or not enabled(environ) or in_foreign_venv():
        return False  # a host's sys.path is never ours to change: the agent does the work instead
    folder = private_env(environ)
    if not _is_ready(folder):
        try:
            _install(folder, os.path.dirname(folder))
        except ConfigurationError:
            older = _older_ready(folder)
            if older is None:
                raise
            sys.stderr.write(
                f"scalekit-auth: warning: could not install the packages for this version of the skill; using the "
                f"ones in {older} (see the log beside it).\n"
            )
            folder = older
    activate(folder)
    return True


def _older_ready(folder: str) -> str | None:
    """A complete environment of the same interpreter for another requirements.txt (offline fallback)."""
    import glob

    prefix = folder.rsplit("-", 1)[0] + "-"
    found = [f for f in glob.glob(glob.escape(prefix) + "*") if os.path.isdir(f) and f != folder]
    ready = [f for f in found if os.path.exists(os.path.join(f, STAMP))]
    return max(ready, key=lambda f: os.path.getmtime(os.path.join(f, STAMP))) if ready else None


def private_env(environ: Mapping[str, str] | None = None) -> str:
    """The private environment's folder, after checking that only we can write to it and its parent."""
    folder = env_dir(environ)
    parent = os.path.dirname(folder)
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            f"Cannot create {parent} for the skill's Python packages ({err.strerror}). Set XDG_CACHE_HOME to a "
            "writable folder, or install requirements.txt into a virtual environment and run the skill with its python."
        ) from None
    _check_private(parent)
    _check_private(folder, fix_mode=True)
    return folder


def _install(folder: str, parent: str) -> None:
    """Make the environment and install requirements.txt into it, under a lock (one installer at a time)."""
    import fcntl

    lock_path = os.path.join(parent, os.path.basename(folder) + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(
                "scalekit-auth: waiting for another scalekit-auth process that is installing packages...\n"
            )
            sys.stderr.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _is_ready(folder):  # another process finished it while we waited
            return
        log_path = os.path.join(parent, os.path.basename(folder) + ".log")
        sys.stderr.write(
            f"scalekit-auth: installing the skill's Python packages for {sys.executable} into {folder} "
            "(once per Python and skill version; this can take a minute)...\n"
        )
        sys.stderr.flush()
        # pip (and any build it runs) never sees the Scalekit credentials
        from .execenv import child_environment

        clean_env = child_environment()
        with open(log_path, "w", encoding="utf-8") as log:
            steps = _steps(folder)
            for step in steps:
                log.write("$ " + " ".join(step) + "\n")
                log.flush()
                try:
                    done = subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
                        step,
                        env=clean_env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        timeout=INSTALL_TIMEOUT,
                        check=False,
                    )
                    code = done.returncode
                except (OSError, subprocess.TimeoutExpired) as err:
                    log.write(f"{err}\n")
                    code = -1
                if code != 0:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise ConfigurationError(_failure(step, log_path))
        os.chmod(folder, 0o700)
        with open(os.path.join(folder, STAMP), "w", encoding="utf-8") as fh:
            fh.write(_requirements_hash() + "\n")
        sys.stderr.write("scalekit-auth: packages installed.\n")
    finally:
        os.close(fd)


def _steps(folder: str) -> list[list[str]]:
    """The commands that make the environment: the interpreter's own venv, else uv."""
    python = _python(folder)
    pip_install = ["--disable-pip-version-check", "--no-input", "--quiet", "install", "-r", REQUIREMENTS]
    if _has_ensurepip():
        return [[sys.executable, "-m", "venv", "--clear", folder], [python, "-m", "pip", *pip_install]]
    uv = shutil.which("uv")
    if uv:
        return [
            [uv, "venv", "--quiet", "--python", sys.executable, folder],
            [uv, "pip", "install", "--quiet", "--python", python, "-r", REQUIREMENTS],
        ]
    raise ConfigurationError(
        f"{sys.executable} cannot make a virtual environment for the skill's packages (its 'venv' module has no "
        "ensurepip). Install it (Debian/Ubuntu: sudo apt install python3-venv), or install uv "
        "(https://docs.astral.sh/uv/), then run again."
    )


def _has_ensurepip() -> bool:
    import importlib.util

    return importlib.util.find_spec("ensurepip") is not None and importlib.util.find_spec("venv") is not None


def _failure(step: list[str], log_path: str) -> str:
    tail = ""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            lines = [line.strip() for line in fh.read().splitlines() if line.strip()]
        tail = lines[-1][:200] if lines else ""
    except OSError:
        pass
    what = "making a virtual environment" if "venv" in step else "installing requirements.txt"
    hint = " Is there a network route to PyPI (or a PIP_INDEX_URL mirror)?" if "install" in step else ""
    return (
        f"scalekit-auth could not install its Python packages ({what} failed: {tail or 'no output'}).{hint} "
        f"Full log: {log_path}. To manage them yourself: python3 -m venv ~/.venvs/scalekit-auth && "
        f"~/.venvs/scalekit-auth/bin/pip install -r {REQUIREMENTS}, then run the skill with that python."
    )


def missing_dependency(package: str) -> MissingDependencyError:
    """MissingDependencyError for `package`, saying how to install it on this set-up."""
    if in_foreign_venv():
        how = f"Install the skill's requirements into it: {sys.executable} -m pip install -r {REQUIREMENTS}."
    elif not enabled():
        how = (
            f"{AUTOINSTALL_VAR}=0 stops scalekit-auth from installing them privately; unset it, or install "
            f"them into a virtual environment (python3 -m venv DIR && DIR/bin/pip install -r {REQUIREMENTS}) "
            "and run the skill with DIR/bin/python."
        )
    else:
        how = f"Install the skill's requirements: {sys.executable} -m pip install -r {REQUIREMENTS}."
    return MissingDependencyError(package, how)


def import_or_explain(module: str, package: str) -> Any:
    """Import `module`; on a bare (maybe externally-managed) Python the first use installs the
    skill's packages into a private environment; still missing: MissingDependencyError."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if not (err.name and (err.name == module or module.startswith(err.name + "."))):
            raise
        missing = err
    if provide(module):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing = err
    raise missing_dependency(package) from missing
