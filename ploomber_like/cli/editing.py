"""Commands that change the database: ``comment``, ``tag``, ``untag``, ``rm`` and ``migrate``."""

from __future__ import annotations

import sys

import click

from ploomber_like.cli.base import (
    DEFAULT_DATABASE,
    cli,
    database_option,
    echo_rich,
    open_tracker,
)


@cli.command("tag")
@click.argument("uuid")
@click.argument("tags", nargs=-1, required=True)
@database_option
def tag_command(uuid: str, tags: tuple[str, ...], database: str) -> None:
    """Add TAGS to run UUID (or a unique prefix).

    \b
    python -m tracker tag 09e7b217 baseline best
    python -m tracker ls --tag best
    """
    tracker = open_tracker(database)
    now = tracker.tag(uuid, *tags)
    click.echo(f"{tracker.get(uuid).uuid}: {', '.join(now)}")


@cli.command("untag")
@click.argument("uuid")
@click.argument("tags", nargs=-1)
@database_option
def untag_command(uuid: str, tags: tuple[str, ...], database: str) -> None:
    """Remove TAGS from run UUID (every tag when none is given).

    \b
    python -m tracker untag 09e7b217 best
    """
    tracker = open_tracker(database)
    now = tracker.untag(uuid, *tags)
    click.echo(f"{tracker.get(uuid).uuid}: {', '.join(now) or '(no tags)'}")


@cli.command("rm")
@click.argument("uuids", nargs=-1)
@database_option
@click.option("--where", metavar="SQL_CONDITION",
              help="Remove the runs matching a SQL condition: \"status = 'failed'\".")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
def rm_command(uuids: tuple[str, ...], database: str, where: str | None, yes: bool) -> None:
    """Delete runs, and the plots and sources no remaining run uses.

    Lists the runs and asks before deleting, unless --yes.

    \b
    python -m tracker rm 09e7b217 d12c1c39
    python -m tracker rm --where "status = 'failed'" --yes
    """
    from ploomber_like import render
    from ploomber_like.errors import ParameterError

    if not uuids and not where:
        raise ParameterError("nothing to remove: give uuids or --where")
    tracker = open_tracker(database)
    runs = tracker.runs(list(uuids) or None, where=where)
    if not runs:
        click.echo("no runs match: nothing removed")
        return
    short = tracker.uuid_prefixes(run.uuid for run in runs)
    if not yes:
        echo_rich(render.runs_text_table(runs, short=short))
        try:
            confirmed = click.confirm(
                f"Delete {len(runs)} run{'s' if len(runs) != 1 else ''}?", default=False
            )
        except click.Abort:  # no answer (stdin closed): the safe choice
            confirmed = False
        if not confirmed:
            click.echo("nothing removed")
            sys.exit(1)
    removed = tracker.remove([run.uuid for run in runs])
    click.echo(
        f"removed {len(removed.runs)} run{'s' if len(removed.runs) != 1 else ''} "
        f"({', '.join(short[u] for u in removed.runs)}) and {removed.blobs} "
        f"unused blob{'s' if removed.blobs != 1 else ''}"
    )


@cli.command("comment")
@click.argument("uuid")
@click.argument("text")
@database_option
def comment_command(uuid: str, text: str, database: str) -> None:
    """Set the comment of run UUID (or a unique prefix)."""
    tracker = open_tracker(database)
    tracker.comment(uuid, text)
    click.echo(f"{tracker.get(uuid).uuid}: {text}")


@cli.command("migrate")
@click.option("-d", "--database", default=DEFAULT_DATABASE, show_default=True,
              help="SQLite file to migrate in place.")
def migrate_command(database: str) -> None:
    """Move plots stored inline (sklearn-evaluation, ploomber-engine) out of line into blobs,
    and index the numeric keys that first appeared in a large database.

    Each step one transaction: every row is kept, and an interrupted migration changes nothing.

    \b
    python -m tracker migrate -d old.db
    """
    from ploomber_like.store import index_every_numeric_key, move_inline_images

    result = move_inline_images(database)
    click.echo(
        f"moved {result.images_moved} inline image(s) out of {result.runs_changed} of "
        f"{result.runs} run(s) into blobs"
    )
    indexed = index_every_numeric_key(database)
    if indexed:
        click.echo(f"indexed {len(indexed)} key(s): {', '.join(indexed)}")
