"""The read API: :class:`SQLiteTracker` queries a tracking database, and takes
sklearn-evaluation's writing calls too (see :mod:`ploomber_like.experiment`).

The API follows sklearn-evaluation's ``SQLiteTracker`` so users switch by changing one import.
It is a facade: filters, sort, uuid prefixes and keys are :mod:`ploomber_like.query`'s, which
the web UI and ``compare`` use as well. Every read opens its own read-only connection, so a query
cannot modify results and always sees the runs a sweep has committed so far. Rows come back as
the objects of :mod:`ploomber_like.results`; rich outputs stay in the ``blobs`` table until shown.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like import experiment, render, store
from ploomber_like.errors import ParameterError
from ploomber_like.experiment import Experiment
from ploomber_like.query import RunQuery
from ploomber_like.record import Artifact
from ploomber_like.results import Results, RichOutput, Run, flatten
from ploomber_like.ui import DEFAULT_PORT

if TYPE_CHECKING:
    import pandas as pd

    from ploomber_like.comparing import Comparison, RunDiff

__all__ = ["Experiment", "Results", "RichOutput", "Run", "SQLiteTracker"]

#: What an empty tracker's reprs say (sklearn-evaluation's words).
_NO_RUNS = "(No experiments saved yet)"


class SQLiteTracker:
    """Query the runs stored in a tracking database, and log runs by hand.

    Parameters
    ----------
    path
        The SQLite file; a missing one is created, as ``sqlite3.connect`` does.
        ``":memory:"`` keeps a private in-memory database for the life of this object.
    create
        With ``create=False`` a missing file is a :class:`~ploomber_like.errors.DatabaseError`
        (``database not found``) instead: what the command line's read commands use, so a
        mistyped name creates nothing.

    Examples
    --------
    >>> tracker = SQLiteTracker("experiments.db")
    >>> tracker.query('''
    ... SELECT uuid, json_extract(parameters, '$.f1') AS f1
    ... FROM experiments ORDER BY f1 DESC LIMIT 3''')  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        if str(path) == store.MEMORY:
            location = store.new_memory_database()
            # The database lives as long as one connection to it does: this one, held open.
            self._memory = store.connect(location)
            self.path = Path(location)
        elif create:
            self.path = Path(path)
            if not self.path.exists():
                store.connect(self.path).close()
        else:
            self.path = RunQuery.existing(path).database
        self._query = RunQuery(self.path)

    def query(
        self, sql: str, as_frame: bool = True, render_plots: bool = False
    ) -> pd.DataFrame | Results:
        """Run a read-only SQL query.

        Parameters
        ----------
        sql
            One SQL statement that reads. Writes (``DELETE``, ``UPDATE``...), ``ATTACH`` and
            ``VACUUM INTO`` are refused.
        as_frame
            Return a :class:`pandas.DataFrame`, indexed by ``uuid`` when that column is
            selected; otherwise a :class:`Results` that renders plots in a notebook.
        render_plots
            With ``as_frame=False``: show stored plots and HTML outputs, not ``[Plot]``.

        Raises
        ------
        QueryError
            SQLite rejected the query; carries SQLite's message and the query.
        """
        columns, rows = store.run_query(self.path, sql)
        if not as_frame:
            return Results(columns, rows, render_plots, database=self.path)
        import pandas as pd

        frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        return frame.set_index("uuid") if "uuid" in frame.columns else frame

    def get(self, uuid: str, unserialize_plots: bool = True, *, detail: bool = False) -> Experiment:
        """The run with this uuid (or unique uuid prefix): parameters, values, status, error.

        It compares equal to the dict of its parameters and values, and takes more values with
        ``log``/``log_dict`` and a comment with ``comment`` (see
        :class:`~ploomber_like.experiment.Experiment`). ``unserialize_plots`` is accepted for
        compatibility with sklearn-evaluation: plots are always
        :class:`~ploomber_like.results.RichOutput` objects, which display themselves.

        What the run left (``run.source``, ``run.stdout``, ``run.metrics``, ``run.artifacts``...)
        is read on first use; ``detail=True`` reads it now, in the same connection as the run.

        Raises
        ------
        UnknownRunError
            No run has this uuid, or the prefix matches several runs (also a ``ValueError``).
        """
        return self._query.run(uuid, detail=detail, kind=Experiment)

    def runs(
        self,
        uuids: Sequence[str] | None = None,
        *,
        status: str | Sequence[str] | None = None,
        sort: str | None = None,
        ascending: bool = False,
        limit: int | None = None,
        tag: str | None = None,
        script: str | None = None,
        where: str | None = None,
    ) -> list[Run]:
        """Stored runs, most recent first unless ``sort`` is given.

        Parameters
        ----------
        uuids
            Only these runs (full uuids or unique prefixes), in this order unless ``sort``.
        status
            Keep only runs with this status (``ok``, ``failed``, ``timeout``...), or with any
            of several: a list, or names separated by commas (``"failed,crashed"``).
        sort
            A column of ``experiments`` (``duration``, ``created``...) or a key of
            ``parameters`` (``f1``, ``model.depth``) to sort by; runs without it come last.
        ascending
            Sort in ascending order (default: descending, best ``f1`` first).
        limit
            At most this many runs.
        tag
            Keep only runs with this tag (see :meth:`tag`).
        script
            Keep only runs of this file: its path as recorded, or its name (``fit.py``).
        where
            A SQL condition on ``experiments``, as after ``WHERE``:
            ``"json_extract(parameters, '$.f1') > 0.8"``.
        """
        return self._query.runs(uuids, status=status, sort=sort, ascending=ascending,
                                limit=limit, tag=tag, script=script, where=where)

    def to_frame(self, **filters: Any) -> pd.DataFrame:
        """A tidy DataFrame of runs: one column per parameter, then per scalar value.

        Indexed by uuid, with ``created``, ``status`` and ``duration`` first and the error and
        comment last. Takes the filters of :meth:`runs`.
        """
        return _runs_frame(self.runs(**filters), scalars_only=True)

    def recent(self, n: int = 5, normalize: bool = False) -> pd.DataFrame:
        """The ``n`` most recent runs as a DataFrame indexed by uuid.

        Parameters
        ----------
        n
            How many runs.
        normalize
            One column per key of ``parameters`` (plots as :class:`RichOutput` objects) instead
            of the ``parameters`` JSON text.
        """
        if normalize:
            return _runs_frame(self.runs(limit=n), scalars_only=False)
        import pandas as pd

        columns = ("uuid", "created", "status", "duration", "error_type", "error_message",
                   "parameters", "comment")
        rows = self._query.recent_rows(n, columns)
        return pd.DataFrame.from_records(rows, columns=columns).set_index("uuid")

    def get_parameters_keys(self, limit: int | None = None) -> list[str]:
        """Every key stored in ``parameters`` across runs, in order of first appearance.

        Nested keys are dotted paths (``model.depth``); keys that are not identifiers are
        double-quoted as in a JSON path (``"f1-score"``). A plot counts as one key. ``limit``
        looks at the first ``limit`` runs only (sklearn-evaluation scans 100); default: all.
        """
        return self._query.keys(limit)

    def get_sample_query(self, compatibility_mode: bool = True) -> str:
        """A query selecting every stored key as its own column.

        Parameters
        ----------
        compatibility_mode
            Use ``json_extract(parameters, '$.key')``, which every SQLite supports; when false
            and SQLite is 3.38 or newer, the shorter ``parameters ->> '$.key'``.
        """
        arrow = not compatibility_mode and sqlite3.sqlite_version_info >= (3, 38, 0)
        return self._query.sample_query(arrow)

    def metrics(self, uuids: str | Iterable[str]) -> pd.DataFrame:
        """The series runs printed as ``name: number`` lines (their output scalars).

        ``uuids`` is one uuid (or unique prefix) or several. Returns a DataFrame with columns
        ``uuid, key, step, value``, one row per point, ordered by run, key and step.
        """
        import pandas as pd

        wanted = [uuids] if isinstance(uuids, str) else list(uuids)
        full = self._query.full_uuids(wanted)
        with store.reading(self.path) as conn:
            rows = store.load_metrics(conn, list(dict.fromkeys(full)))
        return pd.DataFrame.from_records(
            [row[:4] for row in rows], columns=["uuid", "key", "step", "value"]
        )

    def artifacts(self, uuid: str) -> list[Artifact]:
        """The files run ``uuid`` (or unique prefix) created or changed, by path (as
        ``tracker.get(uuid).artifacts``)."""
        return self._query.run(uuid, detail=True).artifacts

    def inputs(self, uuid: str) -> pd.DataFrame:
        """What run ``uuid`` (or unique prefix) read: the files it opened for reading and the
        modules of the user's it imported, under its script's folder and working directory.

        Returns a DataFrame with columns ``kind`` (``file`` or ``module``), ``path`` (relative
        to the script's folder), ``size`` and ``sha256``, ordered by kind and path.
        """
        import pandas as pd

        inputs = self._query.run(uuid, detail=True).inputs
        return pd.DataFrame.from_records(
            [dataclasses.astuple(i) for i in inputs], columns=["kind", "path", "size", "sha256"]
        )

    def comment(self, uuid: str, text: str) -> None:
        """Set the comment of a run (given by uuid or unique uuid prefix)."""
        experiment.set_comment(self.path, self._query.full_uuids([uuid])[0], text)

    def uuid_prefixes(self, uuids: Iterable[str] | None = None) -> dict[str, str]:
        """Each run's shortest unique uuid prefix (at least 8 characters): how views show uuids,
        and what every call taking a uuid accepts. With ``uuids``, only theirs (without reading
        every uuid)."""
        return self._query.uuid_prefixes(uuids)

    def compare(
        self,
        uuids: Sequence[str] | None = None,
        *,
        where: str | None = None,
        sort: str | None = None,
        ascending: bool = False,
        only_changed: bool = False,
        columns: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        tag: str | None = None,
        script: str | None = None,
        limit: int | None = None,
        precision: int = render.DEFAULT_PRECISION,
    ) -> Comparison:
        """Runs side by side: one row per run, one column per parameter and value.

        Takes the filters of :meth:`runs`. ``only_changed`` leaves out the parameters and values
        equal in every run; ``columns`` picks columns (``["n_estimators", "f1"]``); floats
        computed by the runs show ``precision`` decimals, parameters as given. The result prints
        as a table, renders in a notebook (plots included), and converts with ``to_frame()`` or
        ``format("csv" | "json" | "markdown")``.
        """
        from ploomber_like.comparing import compare_runs

        runs = self.runs(uuids, status=status, sort=sort, ascending=ascending, limit=limit,
                         tag=tag, script=script, where=where)
        short = self.uuid_prefixes(run.uuid for run in runs)
        return compare_runs(runs, short, only_changed=only_changed, columns=columns,
                            precision=precision, sort=sort)

    def groups(self, uuids: Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
        """Runs aggregated by replicate group (see :mod:`ploomber_like.replicates`): one row
        per group, indexed by its key, with the parameters its runs share, ``n`` (its runs),
        and ``<key>_mean`` and ``<key>_std`` for every numeric value. Takes the filters of
        :meth:`runs` (``limit`` counts runs)."""
        from ploomber_like.replicates import group_runs, groups_frame

        return groups_frame(group_runs(self.runs(uuids, **filters)))

    def diff(self, a: str, b: str, precision: int = render.DEFAULT_PRECISION) -> RunDiff:
        """What differs between runs ``a`` and ``b`` (uuids or unique prefixes): parameters,
        values, a unified diff of their source texts, and their environments."""
        from ploomber_like.comparing import diff_runs

        first, second = self.get(a, detail=True), self.get(b, detail=True)
        return diff_runs(first, second, self.uuid_prefixes([first.uuid, second.uuid]), precision)

    def tag(self, uuid: str, *tags: str) -> list[str]:
        """Add tags to a run (uuid or unique prefix); returns its tags."""
        run = self.get(uuid)
        for tag in tags:
            if not tag.strip() or tag != tag.strip():
                raise ParameterError(f"invalid tag {tag!r}: empty or surrounded by spaces")
        new = list(dict.fromkeys([*run.tags, *tags]))
        with store.Store(self.path) as writer:
            writer.set_tags({run.uuid: new})
        return new

    def untag(self, uuid: str, *tags: str) -> list[str]:
        """Remove tags from a run (all of them when none is given); returns its tags."""
        run = self.get(uuid)
        new = [t for t in run.tags if tags and t not in tags]
        with store.Store(self.path) as writer:
            writer.set_tags({run.uuid: new})
        return new

    def remove(
        self, uuids: Sequence[str] | None = None, *, where: str | None = None
    ) -> store.Deletion:
        """Delete runs, with their rows in other tables and the blobs (plots, sources) no
        remaining run references. Returns what was removed.

        Parameters
        ----------
        uuids
            The runs (uuids or unique prefixes).
        where
            A SQL condition selecting runs, as in :meth:`runs` (with ``uuids``: both must hold).
        """
        if not uuids and not (where and where.strip()):
            raise ParameterError("nothing to remove: give uuids or a where condition")
        runs = self.runs(uuids or None, where=where)
        with store.Store(self.path) as writer:
            return writer.delete_runs(run.uuid for run in runs)

    def report(
        self,
        output: str | os.PathLike[str] = "report.html",
        *,
        where: str | None = None,
        compare: Sequence[str] = (),
    ) -> Path:
        """Write the web UI's pages as one self-contained HTML file (needs the ``ui`` extra's
        plotly); see :func:`ploomber_like.ui.report.write_report`."""
        from ploomber_like.ui.report import write_report

        return write_report(self.path, output, where=where, compare=compare)

    def serve(self, port: int = DEFAULT_PORT) -> None:
        """Serve the web UI on 127.0.0.1:``port`` until interrupted (needs the ``ui`` extra)."""
        from ploomber_like.ui.app import create_app, listen, serve

        serve(create_app(self.path), listen(port))

    # sklearn-evaluation's writing API, so code written for it runs unchanged: each call is one
    # transaction (see ploomber_like.experiment).

    def new_experiment(self) -> Experiment:
        """Start a run logged by hand (status ``ok``), to ``log`` values to."""
        return self.get(experiment.new_experiment(self.path))

    def new(self) -> str:
        """Insert an empty run (status ``ok``, no parameters) and return its uuid."""
        return experiment.new_empty(self.path)

    def insert(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Insert a run with these parameters; a uuid already stored is a ``DatabaseError``.
        Values may be NumPy values or matplotlib figures (stored as PNG)."""
        experiment.insert(self.path, uuid, parameters)

    def insert_many(self, parameters_all: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert one run per mapping, all in one transaction; returns their new uuids."""
        return experiment.insert_many(self.path, parameters_all)

    def update(
        self, uuid: str, parameters: Mapping[str, Any], allow_overwrite: bool = False
    ) -> None:
        """Set the values of a run made by :meth:`new`; replacing the values of a run that has
        some needs ``allow_overwrite=True`` (:meth:`upsert` adds keys instead)."""
        experiment.update(self.path, uuid, parameters, allow_overwrite)

    def upsert(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Insert the run, or add these keys to it (replacing those it has)."""
        experiment.upsert(self.path, uuid, parameters)

    def upsert_append(self, uuid: str, parameters: Mapping[str, Any]) -> None:
        """Append each value to what the run has under its key (a list given is appended item
        by item; a single stored value becomes a list); keys it lacks are stored as given."""
        experiment.upsert_append(self.path, uuid, parameters)

    def __getitem__(self, uuid: str) -> pd.DataFrame:
        """The run's row (every column, ``parameters`` as JSON text) as a one-row DataFrame
        indexed by uuid, as sklearn-evaluation returns it; :meth:`get` gives the values."""
        import pandas as pd

        full = self._query.full_uuids([uuid])[0]
        with store.reading(self.path) as conn:
            cursor = conn.execute("SELECT * FROM experiments WHERE uuid = ?", (full,))
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
        return pd.DataFrame.from_records(rows, columns=columns).set_index("uuid")

    def __len__(self) -> int:
        return self._query.count()

    def __repr__(self) -> str:
        name = f"SQLiteTracker({store.display_name(self.path)!r})"
        if not store.exists(self.path):
            return f"{name}\n(database deleted)"
        count = len(self)
        if not count:
            return f"{name}\n{_NO_RUNS}"
        # Full uuids, as sklearn-evaluation shows them: code and tests match them in the repr.
        table = render.runs_text_table(
            self.runs(limit=5), title=f"{name}: {count} runs, most recent first",
            shorten_uuids=False,
        )
        # Wider than other reprs by what the whole uuids take.
        return render.to_text(table, width=render.REPR_WIDTH + 24)

    def _repr_html_(self) -> str:
        name = f"<h4>SQLiteTracker: {render.cell_html(store.display_name(self.path))}</h4>"
        if not store.exists(self.path):
            return f"{name}<p>(database deleted)</p>"
        count = len(self)
        if not count:
            return f"{name}<p>{_NO_RUNS}</p>"
        return (
            f"{name}<p>{count} runs</p>"
            + render.runs_html(self.runs(limit=5))
            + "<p>(most recent runs)</p>"
        )


def _runs_frame(runs: Sequence[Run], scalars_only: bool) -> pd.DataFrame:
    """One row per run: parameter columns (across all runs) before value columns."""
    import pandas as pd

    parameters = [run.flat_parameters() for run in runs]
    values = [run.scalar_values() if scalars_only else flatten(run.values) for run in runs]
    parameter_columns = dict.fromkeys(k for p in parameters for k in p)
    value_columns = dict.fromkeys(k for v in values for k in v if k not in parameter_columns)
    records = [
        {
            "uuid": run.uuid,
            "created": run.created,
            "status": run.status,
            "duration": run.duration,
            **run_parameters,
            **run_values,
            "error_type": run.error_type,
            "error_message": run.error_message,
            "comment": run.comment_text,
        }
        for run, run_parameters, run_values in zip(runs, parameters, values, strict=True)
    ]
    columns = ["uuid", "created", "status", "duration", *parameter_columns, *value_columns,
               "error_type", "error_message", "comment"]
    return pd.DataFrame.from_records(records, columns=columns).set_index("uuid")
