"""Every command of the CLI says what it does and is shown in the docs (as sqlite-utils does).

The docs test runs the documented commands; this one checks that none is left undocumented, so
a new command cannot land without help text and an example.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import modules_after_cli

from ploomber_like.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def commands(group: click.Group = cli, prefix: tuple[str, ...] = ()):
    """(words, command) for every leaf command, ``export mlflow`` as ("export", "mlflow"),
    asked of the group as click's help asks (the group loads a command when asked for it)."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        words = (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, words)
        else:
            yield words, command


def documentation() -> str:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


COMMANDS = list(commands())
IDS = [" ".join(words) for words, _ in COMMANDS]


def test_the_cli_has_the_commands_this_test_walks():
    assert {"run", "ls", "show", "query", "export mlflow"} <= set(IDS)


def test_each_command_is_loaded_from_the_module_that_defines_it():
    """The group imports a command's module when the command is used: the table naming each
    command's module must list every command, under the module that adds it."""
    from ploomber_like.cli.base import COMMAND_MODULES

    defined = {name: command.callback.__module__ for name, command in cli.commands.items()}
    assert defined == {
        name: f"ploomber_like.cli.{module}" for name, module in COMMAND_MODULES.items()
    }


def test_running_a_file_imports_no_reading_command(tmp_path):
    """``tracker fit.py`` loads the run command only, not the tables and renderers of ``ls``,
    ``show`` or ``compare``, which would delay the run's kernel."""
    (tmp_path / "fit.py").write_text("x = 1\nx\n")
    loaded = modules_after_cli("fit.py", "-q", cwd=tmp_path)
    assert "ploomber_like.cli.running" in loaded
    for module in ("reading", "editing", "sharing"):
        assert f"ploomber_like.cli.{module}" not in loaded


@pytest.mark.parametrize(("words", "command"), COMMANDS, ids=IDS)
def test_every_command_and_option_has_help(words, command):
    assert (command.help or "").strip(), f"{' '.join(words)} has no help text"
    for parameter in command.params:
        if isinstance(parameter, click.Option) and not parameter.hidden:
            assert (parameter.help or "").strip(), f"{' '.join(words)} {parameter.opts} has no help"


@pytest.mark.parametrize(("words", "command"), COMMANDS, ids=IDS)
def test_every_command_is_shown_in_the_docs(words, command):
    docs = documentation()
    spelled = r"\s+".join(map(re.escape, words))
    shown = re.search(rf"python -m tracker\s+{spelled}\b", docs)
    if words == ("run",):
        # The default command: documented as `python -m tracker FILE ...`.
        shown = shown or re.search(r"python -m tracker\s+\S+\.(py|ipynb)\b", docs)
    assert shown, f"no example of `python -m tracker {' '.join(words)}` in README.md or docs/"


@pytest.mark.parametrize(("words", "command"), COMMANDS, ids=IDS)
def test_help_prints_in_a_pipe_and_exits_0(words, command):
    done = subprocess.run(
        [sys.executable, "-m", "tracker", *words, "--help"],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    first_line = " ".join(command.help.strip().splitlines()[0].split())
    assert first_line[:40] in " ".join(done.stdout.split())


def test_every_run_option_has_its_click_options_declared_once():
    """``run`` takes every field of RunOptions through the one shared declaration (keep_warm
    aside: a command makes one call), and ``rerun`` takes its timeout from the same place."""
    import dataclasses

    from ploomber_like.cli.options import CLICK_OPTIONS
    from ploomber_like.options import RunOptions

    fields = {field.name for field in dataclasses.fields(RunOptions)}
    assert set(CLICK_OPTIONS) == fields - {"keep_warm"}
    run_options = {p.name for p in cli.commands["run"].params}
    assert {"quiet", "timeout", "no_preload", "dask_address", "scalars_pattern"} <= run_options
    assert "timeout" in {p.name for p in cli.commands["rerun"].params}
