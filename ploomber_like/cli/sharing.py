"""Commands that show runs elsewhere: the web UI (``ui``), the static ``report`` and
``export mlflow``. See :mod:`ploomber_like.ui` and :mod:`ploomber_like.mlflow_export`.
"""

from __future__ import annotations

import click

from ploomber_like.cli.base import (
    cli,
    database_option,
)
from ploomber_like.errors import TrackerError
from ploomber_like.ui import DEFAULT_PORT


@cli.command("ui")
@database_option
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port on 127.0.0.1 to serve on.")
def ui_command(database: str, port: int) -> None:
    """Serve a web UI of the runs on 127.0.0.1 (read-only): table, charts, run pages.

    \b
    python -m tracker ui -d experiments.db --port 8500
    """
    _require_ui_extra(("starlette", "uvicorn", "plotly"))
    from ploomber_like.ui.app import HOST, create_app, listen, serve

    app = create_app(database)  # a database that cannot be read fails here, in one line
    sock = listen(port)  # and so does a port already taken
    click.echo(f"serving {database} on http://{HOST}:{port} (Ctrl-C stops)")
    serve(app, sock)


@cli.command("report")
@database_option
@click.option("-o", "--output", default="report.html", show_default=True,
              type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--where", metavar="SQL_CONDITION", help="Only the runs matching a SQL condition.")
@click.option("--compare", "compare", multiple=True, metavar="UUID",
              help="Include the compare page of these 2 to 4 runs (repeat the option).")
def report_command(database: str, output: str, where: str | None, compare: tuple[str, ...]) -> None:
    """Write the UI's pages as one self-contained HTML file, no server needed.

    \b
    python -m tracker report -o report.html
    python -m tracker report -o best.html --where "status = 'ok'" --compare 09e7 --compare d12c
    """
    _require_ui_extra(("plotly",))
    from ploomber_like.ui.report import write_report

    path = write_report(database, output, where=where, compare=compare)
    click.echo(f"wrote {path}")


def _require_ui_extra(modules: tuple[str, ...]) -> None:
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise TrackerError(
            f"this command needs {', '.join(missing)}: pip install 'ploomber-like[ui]'"
        )


@cli.group("export")
def export_group() -> None:
    """Send runs to another tracking system.

    \b
    python -m tracker export mlflow --tracking-uri sqlite:///mlflow.db
    """


@export_group.command("mlflow")
@click.option("--tracking-uri", required=True, metavar="URI",
              help="sqlite:///mlflow.db, or http://127.0.0.1:5000 for an mlflow server.")
@click.option("--experiment", default="ploomber_like", show_default=True,
              help="MLflow experiment to add the runs to (created if missing).")
@click.option("--where", metavar="SQL_CONDITION",
              help="Only runs matching this condition on experiments: \"status = 'ok'\".")
@database_option
def export_mlflow_command(
    tracking_uri: str, experiment: str, where: str | None, database: str
) -> None:
    """Export runs to MLflow: params, metrics, plots and files, tags; runs already exported
    (found by their uuid tag) are skipped.

    \b
    python -m tracker export mlflow --tracking-uri sqlite:///mlflow.db
    python -m tracker export mlflow --tracking-uri http://127.0.0.1:5000 \\
        --experiment fit --where "json_extract(parameters, '$.f1') > 0.8"
    """
    from ploomber_like.mlflow_export import export_mlflow

    result = export_mlflow(tracking_uri, database, experiment=experiment, where=where)
    click.echo(
        f"exported {len(result.exported)} run(s) to experiment {experiment!r} "
        f"(id {result.experiment_id}); {len(result.already_exported)} already there"
        + (f", {len(result.running)} still running (not exported)" if result.running else "")
    )
