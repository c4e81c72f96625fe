"""Logging runs by hand, as with sklearn-evaluation: :class:`Experiment` and the writing calls
behind :class:`~ploomber_like.tracker.SQLiteTracker` (``insert``, ``update``, ``upsert``...).

Each call is one transaction through :class:`~ploomber_like.store.Store`. Values are stored as
JSON with NumPy and pandas values as plain numbers and lists; a matplotlib figure is stored as a
PNG, out of line in the ``blobs`` table like a captured plot.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like import store
from ploomber_like.errors import DatabaseError, ParameterError, TrackerError, UnknownRunError
from ploomber_like.record import Blob, Environment, Record, Status, new_created, new_uuid
from ploomber_like.results import Run, as_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Experiment(Run):
    """A stored run you can add to: what :meth:`SQLiteTracker.new_experiment` and
    :meth:`SQLiteTracker.get` return. Each call writes at once (its own transaction).

    Examples
    --------
    >>> exp = tracker.new_experiment()  # doctest: +SKIP
    >>> exp.log("accuracy", 0.91)  # doctest: +SKIP
    0.91
    >>> tracker.get(exp.uuid) == {"accuracy": 0.91}  # doctest: +SKIP
    True
    """

    def log(self, key: str, value: Any) -> Any:
        """Store a value (JSON-serializable, NumPy, or a matplotlib figure); returns it."""
        self.log_dict({key: value})
        return value

    def log_dict(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """Store several values at once, replacing those already under the same keys."""
        self._show(upsert(self.database, self.uuid, values))
        return values

    def log_figure(self, key: str, figure: Figure) -> None:
        """Store a matplotlib figure as a PNG, out of line in the ``blobs`` table."""
        self.log_dict({key: figure})

    def log_confusion_matrix(
        self,
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        target_names: Sequence[str] | None = None,
        normalize: bool = False,
    ) -> Figure:
        """Plot the confusion matrix of these labels and store it as ``confusion_matrix``.

        Needs scikit-learn. ``normalize=True`` shows each true class's row as fractions.
        """
        metrics = _sklearn_metrics("log_confusion_matrix")
        figure = _new_figure()
        metrics.ConfusionMatrixDisplay.from_predictions(
            y_true, y_pred, display_labels=target_names,
            normalize="true" if normalize else None, ax=figure.subplots(), colorbar=False,
        )
        self.log("confusion_matrix", figure)
        return figure

    def log_classification_report(
        self,
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        *,
        target_names: Sequence[str] | None = None,
        sample_weight: Sequence[float] | None = None,
        zero_division: float = 0,
    ) -> Figure:
        """Plot precision, recall and f1 per class (with support) and store the figure as
        ``classification_report``. Needs scikit-learn."""
        metrics = _sklearn_metrics("log_classification_report")
        report = metrics.classification_report(
            y_true, y_pred, target_names=target_names, sample_weight=sample_weight,
            zero_division=zero_division, output_dict=True,
        )
        classes = [k for k, v in report.items() if isinstance(v, dict) and k not in _AVERAGES]
        columns = ["precision", "recall", "f1-score"]
        grid = [[report[c][m] for m in columns] for c in classes]
        figure = _new_figure()
        ax = figure.subplots()
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="Blues", aspect="auto")
        ax.set_xticks(range(len(columns)), columns)
        labels = [f"{c} (n={report[c]['support']:g})" for c in classes]
        ax.set_yticks(range(len(classes)), labels)
        for row, scores in enumerate(grid):
            for col, score in enumerate(scores):
                ax.text(col, row, f"{score:.2f}", ha="center", va="center",
                        color="white" if score > 0.6 else "black")
        figure.colorbar(image, ax=ax)
        ax.set_title("Classification report")
        self.log("classification_report", figure)
        return figure

    def comment(self, text: str) -> None:
        """Set the run's comment."""
        set_comment(self.database, self.uuid, text)
        self.comment_text = text

    def _show(self, stored: Mapping[str, Any]) -> None:
        # Keep the object in step with the row: the stored values, plots as outputs.
        self.values.update({k: as_output(v, self.database) for k, v in stored.items()})


#: Rows of a classification report that are averages, not classes.
_AVERAGES = ("accuracy", "macro avg", "weighted avg", "micro avg", "samples avg")


# --- the writing calls ---------------------------------------------------------------------


def new_experiment(database: str | os.PathLike[str]) -> str:
    """Add an empty run logged by hand (status ``ok``, the environment recorded); its uuid."""
    record = Record(
        uuid=new_uuid(),
        created=new_created(),
        path="",
        source="",
        parameters={},
        overrides={},
        status=Status.OK,
        # git_state looks at the folder of the given file: here, the working directory, whose
        # commit is what makes numbers logged by hand reproducible.
        environment=Environment.collect(Path.cwd() / "manual"),
    )
    with store.Store(database) as writer:
        writer.finish(record)
    return record.uuid


def new_empty(database: str | os.PathLike[str]) -> str:
    """Add a run with no parameters yet (for :func:`update` to fill); its new uuid."""
    uuid = new_uuid()
    with store.Store(database) as writer, writer.transaction():
        writer.insert_parameters(uuid, None)
    return uuid


def insert(database: str | os.PathLike[str], uuid: str, values: Mapping[str, Any]) -> None:
    """Add run ``uuid`` holding ``values``; a uuid already stored is a ``DatabaseError``."""
    insert_many(database, [values], [uuid])


def insert_many(
    database: str | os.PathLike[str],
    values_all: Iterable[Mapping[str, Any]],
    uuids: Sequence[str] | None = None,
) -> list[str]:
    """Add one run per mapping (new uuids unless given), all in one transaction."""
    prepared = [loggable(values) for values in values_all]
    uuids = [new_uuid() for _ in prepared] if uuids is None else [str(u) for u in uuids]
    with store.Store(database) as writer, writer.transaction():
        for uuid, (values, blobs) in zip(uuids, prepared, strict=True):
            if writer.stored_parameters(uuid) is not None:
                raise DatabaseError(
                    f"a run with uuid {uuid!r} already exists in {store.display_name(database)}"
                )
            writer.insert_parameters(uuid, values, blobs)
    return uuids


def update(
    database: str | os.PathLike[str],
    uuid: str,
    values: Mapping[str, Any],
    allow_overwrite: bool = False,
) -> None:
    """Set the values of run ``uuid``, made empty by ``new()``; replacing what a run already
    holds needs ``allow_overwrite=True`` (as with sklearn-evaluation; :func:`upsert` merges)."""
    values, blobs = loggable(values)
    with store.Store(database) as writer, writer.transaction():
        _existing(writer, uuid, database)
        if not allow_overwrite and not writer.is_empty(uuid):
            raise ParameterError(
                f"cannot update non-empty run {uuid!r}: pass allow_overwrite=True to replace "
                "its values, or use upsert to add keys"
            )
        writer.replace_parameters(uuid, values, blobs)


def upsert(
    database: str | os.PathLike[str], uuid: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Add these keys to run ``uuid`` (replacing those it has), or add the run; returns the
    values as stored."""
    values, blobs = loggable(values)
    with store.Store(database) as writer, writer.transaction():
        current = writer.stored_parameters(str(uuid))
        if current is None:
            writer.insert_parameters(str(uuid), values, blobs)
        else:
            writer.replace_parameters(str(uuid), {**current, **values}, blobs)
    return values


def upsert_append(
    database: str | os.PathLike[str], uuid: str, values: Mapping[str, Any]
) -> None:
    """Append each value to what run ``uuid`` has under its key, as sklearn-evaluation does:
    a stored single value becomes a list, a list given is appended item by item, a key the run
    lacks is stored as given. A missing run is added."""
    values, blobs = loggable(values)
    with store.Store(database) as writer, writer.transaction():
        current = writer.stored_parameters(str(uuid))
        merged = dict(current or {})
        for key, value in values.items():
            if key not in merged:
                merged[key] = value
                continue
            previous = merged[key] if isinstance(merged[key], list) else [merged[key]]
            merged[key] = previous + (value if isinstance(value, list) else [value])
        if current is None:
            writer.insert_parameters(str(uuid), merged, blobs)
        else:
            writer.replace_parameters(str(uuid), merged, blobs)


def set_comment(database: str | os.PathLike[str], uuid: str, text: str) -> None:
    """Set the comment of run ``uuid`` (the full uuid)."""
    with store.Store(database) as writer, writer.transaction():
        _existing(writer, uuid, database)
        writer.set_comment(uuid, text)


def loggable(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[Blob]]:
    """``values`` ready to store as JSON, with the blobs their figures were turned into, or a
    :class:`ParameterError` naming the problem."""
    if not isinstance(values, Mapping):
        raise ParameterError(f"expected a dict of values, got {type(values).__name__}")
    converted: dict[str, Any] = {}
    blobs: list[Blob] = []
    for key, value in values.items():
        if _is_figure(value):
            blob = _figure_blob(value)
            blobs.append(blob)
            converted[str(key)] = blob.reference()
        # NumPy and pandas values have tolist(); json cannot encode most of them as they are.
        elif hasattr(value, "tolist"):
            converted[str(key)] = value.tolist()
        else:
            converted[str(key)] = value
    try:
        store.to_json(converted)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"cannot log {', '.join(map(str, values))}: {exc}") from None
    return converted, blobs


def _existing(writer: store.Store, uuid: str, database: str | os.PathLike[str]) -> dict[str, Any]:
    current = writer.stored_parameters(uuid)
    if current is None:
        # "does not exist": the words sklearn-evaluation's message has, which code may match.
        raise UnknownRunError(f"run {uuid!r} does not exist in {store.display_name(database)}")
    return current


def _is_figure(value: Any) -> bool:
    # Only when matplotlib is already imported: whoever made a figure has imported it.
    figure_module = sys.modules.get("matplotlib.figure")
    return figure_module is not None and isinstance(value, figure_module.Figure)


def _figure_blob(figure: Figure) -> Blob:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return Blob("image/png", buffer.getvalue())


def _new_figure() -> Figure:
    # A Figure made directly, not with pyplot: nothing is displayed in a notebook, and nothing
    # stays open in pyplot's list of figures.
    from matplotlib.figure import Figure

    return Figure(figsize=(5, 4))


def _sklearn_metrics(method: str) -> Any:
    try:
        from sklearn import metrics
    except ImportError:
        raise TrackerError(
            f"{method} needs scikit-learn: pip install scikit-learn"
        ) from None
    return metrics
