"""The web server of ``tracker ui``: a read-only Starlette app on 127.0.0.1.

Pages are jinja2 templates (autoescaped: captured text always shows as text); the runs page
polls ``/api/runs`` so it fills in while a sweep writes. Every script and style, plotly.js
included, is served by the package: the UI works offline.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ploomber_like.errors import ParameterError, QueryError, TrackerError
from ploomber_like.ui import pages, views

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ploomber_like.query import RunQuery

#: Where the UI listens: this machine only.
HOST = "127.0.0.1"

#: Scripts only from the page's own origin, never inline; outputs (user HTML) are sandboxed
#: frames. 'unsafe-eval': the WebGL library under plotly's parcoords compiles its shaders'
#: drivers with new Function().
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-eval'; frame-src 'self'; object-src 'none'; base-uri 'none'"
)


def create_app(database: str | os.PathLike[str]) -> Starlette:
    """The app serving ``database`` read-only (raises ``DatabaseError`` if it cannot be read)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.routing import Route

    from ploomber_like.query import RunQuery

    query = RunQuery.existing(database)
    query.count()  # fail now, with one line, if the file is not a tracking database
    pages.compile_templates()

    async def runs(request: Request) -> Response:
        # The first page of the table comes inside the HTML: rows show with no request after it.
        # The charts' sample is left to the page, once the table is painted.
        params = {"where": request.query_params.get("where") or "", "charts": "0"}
        try:
            first = await run_in_threadpool(_runs_page, query, params)
        except TrackerError:
            first = None  # a bad condition in the address: the page asks, and shows the error
        else:
            first["version"] = _version(query.database)
        return _html(await run_in_threadpool(pages.runs_html, query, True, first))

    async def runs_api(request: Request) -> Response:
        from starlette.responses import JSONResponse

        # Polls ask whether anything was written since: answered from the files' metadata.
        version = _version(query.database)
        if request.query_params.get("since") == version:
            return JSONResponse({"unchanged": True, "version": version})
        where = request.query_params.get("where") or None
        try:
            payload = await run_in_threadpool(_runs_page, query, request.query_params)
        except QueryError as exc:
            # The user wrote the condition, not the query around it: show them theirs.
            message = f"{exc.sqlite_message} (in the condition: {where})"
            return JSONResponse({"error": message}, status_code=400)
        except TrackerError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        payload["version"] = version
        return JSONResponse(payload)

    async def run(request: Request) -> Response:
        try:
            return _html(pages.run_html(query, request.path_params["uuid"], live=True))
        except TrackerError as exc:
            return _html(pages.error_html(str(exc)), status_code=404)

    async def compare(request: Request) -> Response:
        uuids = [u for value in request.query_params.getlist("uuid") for u in value.split(",") if u]
        try:
            return _html(pages.compare_html(query, uuids, live=True))
        except TrackerError as exc:
            return _html(pages.error_html(str(exc)), status_code=400)

    async def blob(request: Request) -> Response:
        return _blob(query.database, request.path_params["sha256"])

    async def static(request: Request) -> Response:
        from starlette.responses import Response

        name = request.path_params["name"]
        asset = pages.asset(name)
        if asset is None:
            return Response("not found", status_code=404, media_type="text/plain")
        media_type, data = asset
        return Response(data, media_type=media_type,
                        headers={"Cache-Control": "max-age=3600"})

    routes = [
        Route("/", runs),
        Route("/api/runs", runs_api),
        Route("/run/{uuid}", run),
        Route("/compare", compare),
        Route("/blob/{sha256}", blob),
        Route("/static/{name}", static),
    ]
    # A page on another site cannot reach the UI through a DNS name pointing at 127.0.0.1.
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])]
    return Starlette(routes=routes, middleware=middleware)


def listen(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:``port`` for :func:`serve`; a port another program holds
    is a ``ParameterError``, said before anything claims to be serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn binds: a port left in TIME_WAIT by a UI just stopped is free again.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ParameterError(
            f"port {port} on {HOST} is taken ({exc.strerror}): choose another with --port"
        ) from None
    return sock


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` (see :func:`create_app`) on ``sock`` (see :func:`listen`) until
    interrupted."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


def _runs_page(query: RunQuery, params: Mapping[str, str]) -> dict[str, Any]:
    """The payload of ``/api/runs`` for its query string: ``where``, ``sort``, ``asc``,
    ``offset``, ``after``, ``limit`` (default :data:`views.PAGE_SIZE`), ``brush`` (JSON),
    ``charts`` (``0``: the table only)."""
    try:
        offset = max(int(params.get("offset") or 0), 0)
        limit = min(max(int(params.get("limit") or views.PAGE_SIZE), 1), views.PAGE_SIZE * 10)
        brush = json.loads(params["brush"]) if params.get("brush") else None
    except ValueError:
        raise ParameterError("offset and limit must be numbers, brush JSON") from None
    if brush is not None and not isinstance(brush, dict):
        raise ParameterError("brush must be a JSON object of ranges by key")
    return views.runs_payload(
        query, where=params.get("where") or None, run_href="/run/{uuid}",
        sort=params.get("sort") or None, ascending=params.get("asc") == "1",
        offset=offset, limit=limit, brush=brush, charts=params.get("charts") != "0",
        after=params.get("after") or None,
    )


def _version(database: Path) -> str:
    """Changes whenever a write reaches the database (its write-ahead log, or the file)."""
    stamps = []
    for suffix in ("", "-wal"):
        try:
            stat = os.stat(f"{database}{suffix}")
        except OSError:
            continue
        stamps.append(f"{stat.st_mtime_ns}.{stat.st_size}")
    return "-".join(stamps)


def _html(text: str, status_code: int = 200) -> Response:
    from starlette.responses import HTMLResponse

    return HTMLResponse(
        text, status_code=status_code,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


def _blob(database: Path, sha256: str) -> Response:
    from starlette.responses import Response

    from ploomber_like import store

    with store.reading(database) as conn:
        blob = store.load_blob(conn, sha256)
    if blob is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        blob.data,
        media_type=blob.mimetype,
        headers={
            # Stored HTML or SVG opened on its own must not run scripts with the UI's origin.
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "max-age=86400, immutable",  # content-addressed: never changes
        },
    )
