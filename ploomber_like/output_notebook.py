"""The executed notebook of a run: built from its cells and outputs, stored with images and
other large outputs as references to blobs, and written back as a plain ``.ipynb``.

nbformat wants every output's data as text, so a reference is the text
``ploomber-like-blob:<sha256>``; :func:`resolve_notebook` puts the content back on export.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

from ploomber_like.capture.protocol import JSON_MIMETYPE, read_tag
from ploomber_like.record import BLOB_REF_KEY, Blob

NOTEBOOK_MIMETYPE = "application/x-ipynb+json"
BLOB_PREFIX = "ploomber-like-blob:"
#: Output data longer than this (characters) is stored as a blob.
INLINE_OUTPUT_CHARS = 1_000
#: Tag of the cell holding the injected parameters, as papermill tags it.
INJECTED_TAG = "injected-parameters"
#: Tag of the file's parameters cell, as papermill (and the source notebook) tag it.
PARAMETERS_TAG = "parameters"


def executed_notebook(
    cells: list[tuple[str, list[dict[str, Any]], int | None, list[str]]],
    add_blob: Callable[[Blob], dict[str, str]],
) -> Blob:
    """The notebook of ``cells`` (source, outputs, execution count, tags) as a blob; a cell
    tagged :data:`INJECTED_TAG` keeps no outputs."""
    from nbformat.v4 import new_code_cell, new_notebook

    notebook = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        }
    )
    for source, outputs, count, tags in cells:
        cell = new_code_cell(source, execution_count=count)
        if tags:
            cell.metadata["tags"] = list(tags)
        if INJECTED_TAG not in tags:
            cell.outputs = [_stored_output(o, add_blob) for o in outputs]
        notebook.cells.append(cell)
    return Blob(NOTEBOOK_MIMETYPE, json.dumps(notebook, ensure_ascii=False).encode())


def resolve_notebook(data: bytes, load_blob: Callable[[str], Blob | None]) -> str:
    """The stored notebook ``data`` as ``.ipynb`` text, blob references replaced by content."""
    notebook = json.loads(data)
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            for mimetype, content in output.get("data", {}).items():
                if isinstance(content, str) and content.startswith(BLOB_PREFIX):
                    blob = load_blob(content[len(BLOB_PREFIX) :])
                    output["data"][mimetype] = _as_output_text(mimetype, blob)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def _stored_output(output: dict[str, Any], add_blob: Callable[[Blob], dict[str, str]]) -> Any:
    output = copy.deepcopy(output)
    data = output.get("data")
    if not isinstance(data, dict):
        return output
    if JSON_MIMETYPE in data:
        # A captured value: Jupyter shows text; the private mimetype means nothing to it.
        data.setdefault("text/plain", data[JSON_MIMETYPE])
        del data[JSON_MIMETYPE]
    tag = read_tag(output)
    if tag and "text/plain" in data:
        data["text/plain"] = f"{tag.key}: {data['text/plain']}"
    for mimetype, content in list(data.items()):
        if isinstance(content, list):
            content = "".join(content)
        if isinstance(content, str) and len(content) > INLINE_OUTPUT_CHARS:
            # PNG bytes as decoded: the same blob as the value a plot was captured as.
            raw = base64.b64decode(content) if mimetype == "image/png" else content.encode()
            reference = add_blob(Blob(mimetype, raw))
            data[mimetype] = BLOB_PREFIX + reference[BLOB_REF_KEY]
    return output


def _as_output_text(mimetype: str, blob: Blob | None) -> str:
    if blob is None:
        return f"[output {mimetype} missing from the database]"
    if mimetype == "image/png":
        return base64.b64encode(blob.data).decode("ascii")
    return blob.data.decode("utf-8", errors="replace")
