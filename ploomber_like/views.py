"""What the terminal shows after a run or a sweep."""

from __future__ import annotations

from typing import Any

from ploomber_like.record import Record, is_blob_reference


def print_record_summary(record: Record) -> None:
    """The run's uuid and status, its scalar values in a table, and its error if any."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, highlight=False)
    style = "green" if record.ok else "red"
    duration = f" in {record.duration:.2f} s" if record.duration is not None else ""
    console.print(f"{record.uuid}  [{style}]{record.status}[/{style}]{duration}")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("key", overflow="fold")
    table.add_column("value", overflow="fold")
    table.add_column("", style="dim")
    for key, value in record.parameters.items():
        table.add_row(key, format_scalar(value), "parameter")
    for key, value in record.values.items():
        table.add_row(key, format_scalar(value), "")
    if table.row_count:
        console.print(table)
    if record.error is not None:
        console.print(f"[{style}]error:[/{style}] {record.error.summary()}", markup=True)


def format_scalar(value: Any, width: int = 60) -> str:
    """A value as one short line: floats at 4 significant digits, plots as ``[image/png]``."""
    if is_blob_reference(value):
        return f"[{value['mimetype']}]"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"
