"""Installing the skill: what ships, and a first run on a Python that refuses `pip install`.

`python3 {baseDir}/get_token.py gmail` must work straight after `clawhub install`, with no
pip and no virtual environment made by hand, also on Debian's externally-managed Python
(PEP 668): the skill makes its own private environment under ~/.cache/scalekit-auth once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, ship_to, shipped_files

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: externally managed (scripts/system-deps installs it)


def test_only_the_skill_ships_not_the_development_files():
    files = shipped_files()
    for needed in ("SKILL.md", "get_token.py", "scalekit-auth", "scalekit_helper.py", "requirements.txt"):
        assert needed in files
    assert "scalekit_auth/__init__.py" in files and "scalekit_auth/emulator/server.py" in files
    for dev in ("tests/", "bench/", "scripts/", ".ci/", ".tools/", ".venv", "__pycache__"):
        assert not [f for f in files if dev in f or f.startswith(dev)], dev
    for dev in ("Makefile", "requirements-dev.txt", ".env", "connections.json"):
        assert dev not in files


def test_the_demo_runs_from_what_ships(tmp_path):
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEKIT_")}
    env["HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, str(skill / "scalekit-auth"), "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[6/6]" in done.stdout


def _is_externally_managed(python: str) -> bool:
    code = (
        "import sysconfig, os; print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() == "True"


@pytest.fixture
def system_python():
    assert os.path.exists(SYSTEM_PYTHON), "scripts/system-deps installs Debian's python3"
    assert _is_externally_managed(SYSTEM_PYTHON), f"{SYSTEM_PYTHON} is expected to be externally managed (PEP 668)"
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True
    )
    assert version.stdout.strip() == "True", f"{SYSTEM_PYTHON} is older than 3.11"
    return SYSTEM_PYTHON


@pytest.mark.system
def test_pip_really_refuses_on_that_python(system_python, tmp_path):
    """The premise: a plain `pip install -r requirements.txt` fails there."""
    done = subprocess.run(
        [system_python, "-m", "pip", "install", "--dry-run", "requests"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        timeout=120,
    )
    assert done.returncode != 0 and "externally-managed-environment" in done.stdout + done.stderr


@pytest.mark.system
@pytest.mark.slow
def test_the_first_run_on_an_externally_managed_python_installs_privately_and_works(system_python, tmp_path, emulator):
    skill = ship_to(tmp_path / "skills" / "scalekit-auth")
    state, cache, home = tmp_path / "state", tmp_path / "cache", tmp_path / "home"
    state.mkdir()
    home.mkdir()
    (state / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess"}}')
    emulator.seed("gmail_u3134a", "mess", access_token="first-run-token")
    env = {
        "PATH": os.environ["PATH"],
        "SCALEKIT_AUTH_AGENT": "0",  # this test is about the install, not the agent
        "HOME": str(home),
        "XDG_CACHE_HOME": str(cache),
        "SCALEKIT_AUTH_DIR": str(state),
        "SCALEKIT_ENVIRONMENT_URL": emulator.url,
        "SCALEKIT_CLIENT_ID": emulator.client_id,
        "SCALEKIT_CLIENT_SECRET": emulator.client_secret,
        "SCALEKIT_TIMEOUT": "60",  # a cold interpreter on a busy machine: time is not what this test is about
        # the machine's pip cache and index settings (no PyPI download when the wheels are cached)
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"),
    }
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_CONFIG_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    for name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        env[name] = os.environ[name]

    def get_token() -> subprocess.CompletedProcess:
        return subprocess.run(
            [system_python, str(skill / "get_token.py"), "gmail"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            stdin=subprocess.DEVNULL,
        )

    first = get_token()
    assert (first.returncode, first.stdout) == (0, "first-run-token\n"), first.stderr
    assert "installing the skill's Python packages" in first.stderr
    private = [p for p in (cache / "scalekit-auth").glob("python-3.*") if p.is_dir()]
    assert len(private) == 1 and (private[0] / "bin" / "python").exists()
    assert (cache / "scalekit-auth").stat().st_mode & 0o777 == 0o700
    assert not list(skill.rglob("site-packages")), "nothing is installed into the skill folder"

    second = get_token()
    assert (second.returncode, second.stdout) == (0, "first-run-token\n"), second.stderr
    assert "installing" not in second.stderr

    # Another skill's code on that Python (no packages of its own): get_token() is served by the
    # token agent, which runs in the private environment; the host's sys.path is left as it was.
    host = {k: v for k, v in env.items() if k != "SCALEKIT_AUTH_AGENT"}
    host["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    (tmp_path / "run").mkdir(mode=0o700)
    code = (
        f"import sys; sys.path.insert(0, {str(skill)!r}); before = list(sys.path); "
        "from scalekit_helper import get_token; print(get_token('gmail')); "
        "print('unchanged' if sys.path == before else 'CHANGED'); "
        "print('no-sdk-here' if 'scalekit' not in sys.modules else 'SDK-IMPORTED')"
    )
    try:
        api = subprocess.run([system_python, "-c", code], capture_output=True, text=True, env=host, timeout=300)
    finally:
        subprocess.run([system_python, str(skill / "scalekit-auth"), "agent", "stop"], env=host, timeout=300,
                       capture_output=True)  # fmt: skip
    assert api.stdout.splitlines() == ["first-run-token", "unchanged", "no-sdk-here"], api.stderr


def test_a_private_environment_others_can_write_to_is_refused(tmp_path):
    from scalekit_auth import bootstrap
    from scalekit_auth.errors import ConfigurationError

    cache = tmp_path / "cache"
    folder = Path(bootstrap.env_dir({"XDG_CACHE_HOME": str(cache)}))
    folder.mkdir(parents=True)
    os.chmod(folder.parent, 0o777)
    with pytest.raises(ConfigurationError, match="others can write to it"):
        bootstrap.private_env({"XDG_CACHE_HOME": str(cache)})
    os.chmod(folder.parent, 0o700)
    folder.rmdir()
    folder.symlink_to(tmp_path)  # a folder swapped for a link to somewhere else
    with pytest.raises(ConfigurationError, match="not a plain folder"):
        bootstrap.private_env({"XDG_CACHE_HOME": str(cache)})


def test_inside_someone_elses_virtual_environment_it_never_installs_into_it(tmp_path):
    """Someone else's venv is theirs: nothing is installed into it. With the private install
    turned off too, the message says how to install the packages there."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (tmp_path / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a"}}')
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SCALEKIT_AUTH_DIR": str(tmp_path)}
    env["SCALEKIT_AUTH_AUTOINSTALL"] = "0"
    env.update(SCALEKIT_ENVIRONMENT_URL="https://x.scalekit.com", SCALEKIT_CLIENT_ID="id", SCALEKIT_CLIENT_SECRET="s")
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(ROOT / "get_token.py"), "gmail"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert "is not installed" in done.stderr and f"{venv}/bin/python -m pip install -r {ROOT}/requirements.txt" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".cache" / "scalekit-auth").exists()
    assert not list(venv.rglob("scalekit")), "nothing was installed into someone else's venv"


def test_the_auto_install_can_be_turned_off(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SCALEKIT_AUTH_AUTOINSTALL": "0"}
    code = "from scalekit_auth import bootstrap; print(bootstrap.provide('scalekit'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def _requirements(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith(("#", "-r"))]


def _pyproject() -> dict:
    return __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_stated_once():
    """scalekit_auth.__version__ is the version; pyproject.toml reads it from there."""
    import scalekit_auth

    config = _pyproject()
    assert "version" not in config["project"] and "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "scalekit_auth.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", scalekit_auth.__version__)


def test_the_dependency_lists_agree():
    """requirements.txt is the list: pyproject.toml reads it, the auto-install installs it, and the
    module names the auto-install checks for are those of exactly these packages."""
    from scalekit_auth.bootstrap import REQUIRED_MODULES

    wanted = _requirements(ROOT / "requirements.txt")
    config = _pyproject()
    assert "dependencies" not in config["project"] and "dependencies" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    names = [re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0] for line in wanted]
    assert sorted(REQUIRED_MODULES.values()) == sorted(names)
    dev = _requirements(ROOT / "requirements-dev.txt")
    for extra in config["project"]["optional-dependencies"].values():  # pinned as the tests run them
        assert set(extra) <= set(dev), extra


def test_the_inline_script_metadata_matches_requirements_txt():
    """PEP 723 metadata lets `uv run get_token.py gmail` work too; it must list the same packages."""
    wanted = _requirements(ROOT / "requirements.txt")
    for script in ("get_token.py", "scalekit-auth"):
        text = (ROOT / script).read_text()
        block = text.split("# /// script\n", 1)[1].split("# ///\n", 1)[0]
        meta = __import__("tomllib").loads(
            "\n".join(line.removeprefix("# ").removeprefix("#") for line in block.splitlines())
        )
        assert meta["dependencies"] == wanted, script
        assert meta["requires-python"] == ">=3.11"


def test_the_package_ships_its_types():
    """PEP 561: `scalekit_auth/py.typed` marks the package as typed, and the wheel carries it."""
    assert (ROOT / "scalekit_auth" / "py.typed").is_file()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["scalekit_auth"]


@pytest.mark.slow
def test_another_skills_venv_without_the_sdk_is_served_by_the_agent(tmp_path, emulator):
    """skills/other-skill with its own venv (no SDK), agent stopped: one documented line works
    from any working directory, and the host's sys.path and modules are never changed."""
    skills = tmp_path / "skills"
    skill = ship_to(skills / "scalekit-auth")
    other = skills / "other-skill"
    other.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other / ".venv")], check=True, timeout=300)
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    run.mkdir(mode=0o700)
    (state / "connections.json").write_text('{"gmail": {"connection_name": "gmail_u3134a", "identifier": "mess"}}')
    emulator.seed("gmail_u3134a", "mess", access_token="sibling-token")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCALEKIT_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        emulator.env, SCALEKIT_AUTH_DIR=str(state), XDG_RUNTIME_DIR=str(run), XDG_CACHE_HOME=str(Path.home() / ".cache")
    )
    code = (
        "import os, sys; before = list(sys.path); "
        "sys.path.insert(0, os.path.expanduser('../scalekit-auth')); mine = list(sys.path); "
        "from scalekit_helper import get_token; print(get_token('gmail')); "
        "print('unchanged' if sys.path == mine else 'CHANGED'); print('scalekit' in sys.modules)"
    )
    try:
        done = subprocess.run([str(other / ".venv" / "bin" / "python"), "-c", code], cwd=other, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
    finally:
        subprocess.run([sys.executable, str(skill / "scalekit-auth"), "agent", "stop"], env=env, timeout=300,
                       capture_output=True)  # fmt: skip
    assert done.stdout.splitlines() == ["sibling-token", "unchanged", "False"], done.stderr
