"""The command line: a thin layer over the Python API.

``python -m tracker FILE -p a=1`` runs a file (the default command); ``ls``, ``show``, ``query``,
``keys``, ``sample-query`` and ``comment`` read the database.
"""

from __future__ import annotations

import sys

import click

from ploomber_like.errors import TrackerError

DEFAULT_DATABASE = "experiments.db"


class _DefaultToRun(click.Group):
    """A group whose unknown first word is a file: ``tracker fit.py`` is ``tracker run fit.py``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultToRun, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Track runs of a script or notebook in SQLite, and query them.

    \b
    python -m tracker fit.py -p n_estimators=50,max_depth=10
    python -m tracker ls
    """


# --- running files: see ploomber_like.tracking and ploomber_like.sweep ----------------------


# --- reading the database: see ploomber_like.tracker ----------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m tracker``, ``python -m ploomber_like.tracking`` and the script."""
    try:
        cli.main(args=argv, prog_name="tracker", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except TrackerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
