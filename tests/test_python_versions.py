"""An interpreter older than scalekit-auth supports stops at once with one clear line and exit code 3.

Checked with every older CPython found on the machine (scripts/pythons), and always with this
interpreter pretending to be 3.10, so the check runs even where no old Python is installed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

import scalekit_auth

from .helpers import ROOT

MIN = scalekit_auth.MIN_PYTHON
ENTRY_POINTS = {
    "get_token.py": ["get_token.py", "gmail"],
    "scalekit-auth": ["scalekit-auth", "token", "gmail"],
    "python -m scalekit_auth": ["-m", "scalekit_auth", "--help"],
    "import scalekit_helper": ["-c", "import scalekit_helper; print('imported')"],
    "python -m scalekit_auth.agent": ["-m", "scalekit_auth.agent", "--help"],
    "python -m scalekit_auth.emulator": ["-m", "scalekit_auth.emulator", "--help"],
}
GUARDED_FILES = ("scalekit_auth/__init__.py", "scalekit_helper.py", "get_token.py", "scalekit-auth")


def installed_pythons() -> list[tuple[tuple[int, int], str]]:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pythons")], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    found = []
    for line in out.splitlines():
        version, path = line.split(" ", 1)
        major, minor = (int(x) for x in version.split("."))
        found.append(((major, minor), path))
    return found


def assert_refused(proc: subprocess.CompletedProcess, version: str, label: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 3, f"{label}: exit {proc.returncode}\n{proc.stderr}"
    assert proc.stdout == "", label
    assert len(lines) == 1 and "Traceback" not in proc.stderr, f"{label}:\n{proc.stderr}"
    line = lines[0]
    assert f"needs Python {MIN[0]}.{MIN[1]} or newer" in line, line
    assert f"this is Python {version}" in line, line
    assert "pyenv install" in line and "python.org" in line, line  # how to get one


@pytest.mark.system
def test_every_older_cpython_on_the_machine_is_refused_cleanly():
    found = installed_pythons()
    assert sys.version_info[:2] in [v for v, _ in found], f"scripts/pythons missed this interpreter: {found}"
    olds = [(v, p) for v, p in found if v < MIN]  # none on some machines: the pretend test below covers them
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for _version, python in olds:
        full = subprocess.run(
            [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True, timeout=60
        ).stdout.strip()
        for label, args in ENTRY_POINTS.items():
            proc = subprocess.run(
                [python, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL
            )
            assert_refused(proc, full, f"{python} {label}")


# Runs an entry point with sys.version_info set to 3.10 before anything of ours is imported.
PRETEND = """
import runpy, sys
sys.version_info = (3, 10, 13, "final", 0)
sys.version = "3.10.13 (pretend)"
target = sys.argv[1]
sys.argv = sys.argv[1:]
if target == "scalekit_helper":
    import scalekit_helper
elif target.startswith("-m"):
    runpy.run_module(target[2:], run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
print("still running")
"""


@pytest.mark.parametrize(
    "target", ["get_token.py", "scalekit-auth", "-mscalekit_auth", "-mscalekit_auth.agent", "scalekit_helper"]
)
def test_this_python_pretending_to_be_older_is_refused(target):
    proc = subprocess.run(
        [sys.executable, "-c", PRETEND, target, "gmail"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert_refused(proc, "3.10.13", target)


@pytest.mark.system
def test_the_guard_parses_on_every_python_it_must_refuse():
    """The files that run before the check use no syntax newer than Python 2.7 understands:
    compiled by the oldest interpreter on the machine, and checked for the usual suspects."""
    for name in GUARDED_FILES:
        text = (ROOT / name).read_text()
        assert not re.search(r"""\bf["']""", text), f"{name}: f-string"
        assert not re.search(r"def \w+\([^)]*:", text), f"{name}: annotation"
        compile(text, name, "exec")
    oldest = installed_pythons()[0]
    if oldest[0] < MIN:
        code = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f).read(), f, 'exec')\nprint('ok')"
        proc = subprocess.run(
            [oldest[1], "-c", code, *GUARDED_FILES], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert proc.stdout.strip() == "ok", f"{oldest[1]}: {proc.stderr}"


def test_declared_python_matches_the_check():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={MIN[0]}.{MIN[1]}"
    classifiers = [c for c in project["classifiers"] if c.startswith("Programming Language :: Python :: 3.")]
    assert classifiers and all(tuple(map(int, c.rsplit(" ", 1)[1].split("."))) >= MIN for c in classifiers)
    readme = (ROOT / "README.md").read_text()
    assert f"Python {MIN[0]}.{MIN[1]}" in readme
