"""The command line's spelling of :class:`~ploomber_like.options.RunOptions`, declared once.

:func:`run_options` adds the click options of some or all of its fields to a command and hands
the command one ``options`` argument, built and checked by ``RunOptions`` itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ploomber_like.options import RunOptions
from ploomber_like.record import DEFAULT_MAX_ARTIFACT_BYTES

#: The click options of each field, in the order ``--help`` lists them.
CLICK_OPTIONS: dict[str, tuple[Callable[[Any], Any], ...]] = {
    "quiet": (click.option("-q", "--quiet", is_flag=True, help="No warnings, no progress bar."),),
    "timeout": (click.option("--timeout", type=float, help="Seconds each run may take."),),
    "workers": (
        click.option("-w", "--workers", type=int, help="Runs at once in a sweep (default: cores)."),
    ),
    "force": (
        click.option("--force", is_flag=True, help="Rerun sweep points already recorded ok."),
    ),
    "preload": (
        click.option("--no-preload", is_flag=True,
                     help="Start a fresh kernel per run instead of forking a warm template."),
    ),
    "executor": (
        click.option("--dask", "dask_address", metavar="ADDRESS",
                     help="Run the sweep on the Dask scheduler at ADDRESS (tcp://host:8786)."),
    ),
    "comment": (click.option("--comment", help="Text stored in the comment column."),),
    "name": (click.option("--name", help="A label stored with the run (every run of a sweep)."),),
    "output_scalars": (
        click.option("--no-output-scalars", is_flag=True,
                     help="Do not record 'name: number' lines of stdout as series."),
        click.option("--output-scalars", "scalars_pattern", metavar="REGEX",
                     help="Read series with this pattern instead: groups (?P<key>..) and "
                          "(?P<value>..)."),
    ),
    "save_notebook": (
        click.option("--save-notebook", is_flag=True,
                     help="Store each run's executed notebook (show UUID --export DIR writes it)."),
    ),
    "max_artifact_bytes": (
        click.option("--max-artifact-bytes", type=click.IntRange(min=0), metavar="BYTES",
                     default=DEFAULT_MAX_ARTIFACT_BYTES, show_default=True,
                     help="Store files a run writes up to this size; larger ones by size and "
                          "hash only."),
    ),
}

#: The names click gives the values of the options above.
_PARAMETERS = frozenset({
    "quiet", "timeout", "workers", "force", "no_preload", "dask_address", "comment", "name",
    "no_output_scalars", "scalars_pattern", "save_notebook", "max_artifact_bytes",
})

#: Click parameter names that spell a field otherwise: (field, how its value is read).
_SPELLED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "no_preload": ("preload", lambda no_preload: not no_preload),
    "dask_address": ("executor", lambda address: address),
}


def run_options(*fields: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the click options of ``fields`` (every one when none is named) to a command, which
    receives them as ``options``, a :class:`RunOptions` (the others at their defaults)."""
    chosen = fields or tuple(CLICK_OPTIONS)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_options(**values: Any) -> Any:
            given = {name: values.pop(name) for name in [*values] if name in _PARAMETERS}
            return command(**values, options=_run_options(given))

        for field in reversed(chosen):
            for option in reversed(CLICK_OPTIONS[field]):
                with_options = option(with_options)
        return with_options

    return decorate


def _run_options(given: dict[str, Any]) -> RunOptions:
    if "no_output_scalars" in given:
        off, pattern = given.pop("no_output_scalars"), given.pop("scalars_pattern")
        if off and pattern:
            raise click.UsageError("--no-output-scalars and --output-scalars exclude each other")
        given["output_scalars"] = False if off else pattern or True
    for name, (field, read) in _SPELLED.items():
        if name in given:
            given[field] = read(given.pop(name))
    return RunOptions(**given)
