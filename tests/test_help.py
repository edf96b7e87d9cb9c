"""One consistent help: each command once, real usage lines (named as the user can run the command), every
exit code from one place, --version, `help [COMMAND]`, and the same metavar for the same kind of value."""

from __future__ import annotations

import argparse
import re

import pytest

import scalekit_auth
from scalekit_auth import cli, invocation
from scalekit_auth.errors import ExitCode

from .helpers import ROOT

NAMES = [c.name for c in cli.COMMANDS]


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def section(text: str, title: str) -> list[str]:
    """The lines of a help section (`title:` up to the next blank line)."""
    lines = text.splitlines()
    start = lines.index(f"{title}:") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def exit_code_table(text: str) -> dict[int, str]:
    """{code: meaning} from a help text's `exit codes:` section (`  N  meaning`, continuation lines indented)."""
    table: dict[int, str] = {}
    for line in section(text, "exit codes"):
        found = re.match(r"\s+(\d+)\s{2,}(.*)", line)
        if found:
            table[int(found[1])] = found[2].strip()
    return table


def readme_exit_codes() -> dict[int, str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    table = {}
    for row in block.splitlines()[2:]:
        codes, meaning = (cell.strip() for cell in row.strip("|").split("|"))
        for code in codes.split(","):
            table[int(code)] = meaning.replace("`", "")
    return table


EVERY_CODE = {int(c) for c in ExitCode} | {126, 127}


# -- each command once, in the table's order --------------------------------------------------


def test_top_level_help_lists_each_command_once_in_the_tables_order(capsys):
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    listed = [line.split()[0] for line in section(out, "commands") if re.match(r"  \S", line)]
    assert listed == [*NAMES, "help"]
    for name in NAMES:  # nowhere else: argparse's own list of choices is gone
        others = [line for line in out.splitlines() if re.match(rf"\s+{name}\s", line)]
        assert len(others) == 1, (name, others)


# -- real usage lines -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_each_command_has_a_real_usage_line(capsys, name):
    code, out, _ = run_main(capsys, name, "--help")
    assert code == 0
    usage = out.split("\n\n", 1)[0]
    assert usage.split()[: 2 + len(invocation.runnable().split())] == ["usage:", *invocation.runnable().split(), name]
    assert "COMMAND" not in usage and "[ARGS]" not in usage, usage


def test_exec_usage_shows_the_command_after_the_double_dash(capsys):
    _, out, _ = run_main(capsys, "exec", "--help")
    assert " -- CMD [ARG ...]" in out.split("\n\n", 1)[0]


def test_usage_errors_show_the_commands_own_usage(capsys):
    code, _, err = run_main(capsys, "status", "--bogus")
    assert code == 2
    assert err.startswith(f"usage: {invocation.runnable()} status"), err


# -- every exit code, from one place ---------------------------------------------------------------


def test_the_exit_codes_in_help_are_errors_exitcode_and_the_readmes(capsys):
    _, out, _ = run_main(capsys, "--help")
    help_table = exit_code_table(out)
    readme = readme_exit_codes()
    assert set(help_table) == EVERY_CODE == set(readme), (sorted(help_table), sorted(readme))
    for number, meaning in help_table.items():  # the README says the same first, then may say more
        assert readme[number].startswith(meaning), (number, meaning, readme[number])


@pytest.mark.parametrize("name", NAMES)
def test_each_commands_help_lists_every_exit_code(capsys, name):
    _, out, _ = run_main(capsys, name, "--help")
    assert set(exit_code_table(out)) == EVERY_CODE


def test_get_token_py_help_lists_every_exit_code(capsys):
    assert cli.get_token_main(["--help"]) == 0
    assert set(exit_code_table(capsys.readouterr().out)) == EVERY_CODE


# -- --version and `help [COMMAND]` ------------------------------------------------------------------


def test_version(capsys):
    code, out, _ = run_main(capsys, "--version")
    assert (code, out) == (0, f"scalekit-auth {scalekit_auth.__version__}\n")


def test_help_is_the_same_as_dash_dash_help(capsys):
    assert run_main(capsys, "help") == run_main(capsys, "--help")
    for name in ("status", "exec", "token"):
        assert run_main(capsys, "help", name) == run_main(capsys, name, "--help")


def test_help_for_an_unknown_command_is_a_usage_error(capsys):
    code, out, err = run_main(capsys, "help", "fly")
    assert code == 2 and out == ""
    assert err.startswith(f"usage: {invocation.runnable()} help") and "'fly'" in err, err


# -- metavars --------------------------------------------------------------------------------------


def options(parser: argparse.ArgumentParser):
    """(command, flag, metavar shown in help, action) for every option that takes a value, in every command."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        formatter = p._get_formatter()
        for action in p._actions:
            if action.option_strings and action.nargs != 0:
                shown = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
                for flag in action.option_strings:
                    yield name, flag, shown, action


# Same flag, different kinds of value (the commands' own meanings): request --query KEY=VALUE, tools --query TEXT.
DIFFERENT_MEANINGS = {"--query", "-H", "--header"}


def test_the_same_option_shows_the_same_metavar_everywhere():
    seen: dict[str, set[str]] = {}
    for _command, flag, shown, _action in options(cli.build_parser()):
        if flag not in DIFFERENT_MEANINGS:
            seen.setdefault(flag, set()).add(shown.strip("[]"))
    assert {flag: shown for flag, shown in seen.items() if len(shown) > 1} == {}


def test_every_duration_is_in_seconds():
    durations = [
        (command, flag, shown)
        for command, flag, shown, action in options(cli.build_parser())
        if flag.startswith("--") and ("timeout" in flag or flag == "--wait")
    ]
    assert durations and all(shown.strip("[]") == "SECONDS" for _, _, shown in durations), durations


def test_help_examples_name_the_command_as_it_runs(capsys):
    _, out, _ = run_main(capsys, "--help")
    for line in section(out, "examples"):
        assert invocation.runnable() in line, line
