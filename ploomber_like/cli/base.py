"""The command group, its entry point and what its commands share (the database option,
opening the tracker, printing)."""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
from pathlib import Path

import click

from ploomber_like.errors import TrackerError

DEFAULT_DATABASE = "experiments.db"

#: The module of this package that adds each command to the group: a command's module is
#: imported when the command is used, so running a file does not import every reading command
#: (their tables, renderers and queries: ~0.1 s before the run's kernel could start).
COMMAND_MODULES = {
    "run": "running", "rerun": "running",
    "ls": "reading", "compare": "reading", "diff": "reading", "show": "reading",
    "query": "reading", "keys": "reading", "sample-query": "reading",
    "tag": "editing", "untag": "editing", "rm": "editing", "comment": "editing",
    "migrate": "editing",
    "ui": "sharing", "report": "sharing", "export": "sharing",
}


class _DefaultToRun(click.Group):
    """A group whose first word, when it names a file, runs it: ``tracker fit.py`` is
    ``tracker run fit.py``. Any other unknown word is a mistyped command (``lss``), which click
    reports with the close command it suggests. Commands are loaded from their module
    (:data:`COMMAND_MODULES`) when first asked for."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.list_commands(ctx) and _looks_like_file(args[0]):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and self.get_command(ctx, args[0]) is None:
            # A mistyped command: click suggests the close ones from those loaded, so all.
            for name in COMMAND_MODULES:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def _looks_like_file(word: str) -> bool:
    if word in ("--help", "-h"):
        return False
    path = Path(word)
    return word.startswith("-") or bool(path.suffix) or os.sep in word or "/" in word \
        or path.exists()


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Track runs of a script or notebook in SQLite, and query them.

    \b
    python -m tracker fit.py -p n_estimators=50,max_depth=10
    python -m tracker ls
    """


def database_option(command):
    return click.option(
        "-d", "--database", default=DEFAULT_DATABASE, show_default=True,
        help="SQLite file to read.",
    )(command)


def open_tracker(database: str):
    from ploomber_like.tracker import SQLiteTracker

    # Reading a mistyped name must say so, not create an empty database.
    return SQLiteTracker(database, create=False)


def echo_rich(renderable: object) -> None:
    from rich.console import Console

    Console(highlight=False).print(renderable)


def precision_option(command):
    from ploomber_like.render import DEFAULT_PRECISION

    return click.option(
        "--precision", type=click.IntRange(0, 17), default=DEFAULT_PRECISION, show_default=True,
        help="Decimals shown for floats the runs computed (parameters show as given).",
    )(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tracker``, ``python -m ploomber_like.tracking`` and the script."""
    # At exit, the interpreter's last garbage collections walk every object the command made:
    # ~0.1 s of a run's wall time after its summary is printed. Frozen, they are left to the
    # operating system, which frees the process's memory anyway. (Unregistered first: one
    # registration however many times main runs in a process.)
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    try:
        cli.main(args=argv, prog_name="tracker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted: runs in flight were recorded as 'interrupted'", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except TrackerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
