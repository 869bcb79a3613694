"""The dashboard's web application (Starlette): the page and its JSON API.

    GET /                              the page (static/index.html)
    GET /static/...                    its script and style sheet
    GET /api/cluster                   Overview: nodes, totals, actor/task/job counts
    GET /api/nodes                     nodes with CPU/GPU/memory/object store use
    GET /api/actors?limit=500          actors, live ones first
    GET /api/tasks?limit=200           newest task attempts with state and duration
    GET /api/jobs                      jobs (drivers), newest first
    GET /api/placement_groups          placement groups and their bundles
    GET /api/logs                      the logs one can open (workers, system logs)
    GET /api/logs?node_id=N&pid=P[&err=1][&tail=200]   a worker's log tail
    GET /api/logs?node_id=N&name=gcs.log[&tail=200]     a system log's tail

Every request needs the cluster token (``TokenAuthMiddleware``). The endpoints
are plain functions: Starlette runs them in its thread pool, where the gRPC
calls of ``source`` may block. A cluster that does not answer gives 503 with
``{"error": ...}``, a log that does not exist 404, a bad parameter 400.

>>> app = create_app(ClusterSource(gcs_address, token), token)
>>> uvicorn.run(app, host="127.0.0.1", port=8265)
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..http_auth import TokenAuthMiddleware

logger = logging.getLogger("ember.dashboard")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The page loads only its own files: no inline script, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DEFAULT_ACTOR_LIMIT = 500
DEFAULT_TASK_LIMIT = 200
MAX_LIMIT = 10_000


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _json(fn: Callable[[Request], Any]) -> Callable[[Request], Response]:
    """An endpoint answering ``fn(request)`` as JSON, its failures as JSON errors."""
    def endpoint(request: Request) -> Response:
        try:
            body, status = fn(request), 200
        except ValueError as e:
            body, status = {"error": str(e)}, 400
        except LookupError as e:
            body, status = {"error": str(e.args[0] if e.args else e)}, 404
        except Exception as e:  # noqa: BLE001 - the cluster did not answer: say so, keep serving
            logger.warning("%s failed: %s", request.url.path, e)
            body, status = {"error": f"the cluster did not answer: {_short(e)}"}, 503
        return JSONResponse(body, status_code=status, headers=SECURITY_HEADERS)
    endpoint.__name__ = fn.__name__
    return endpoint


def _short(e: Exception) -> str:
    details = getattr(e, "details", None)
    text = details() if callable(details) else str(e)
    return (text or type(e).__name__).splitlines()[0][:300]


def create_app(source: Any, token: str) -> Any:
    """The ASGI app serving ``source`` (a source.ClusterSource, or anything with its
    methods), behind the token check for ``token``."""

    def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers=SECURITY_HEADERS)

    def cluster(request: Request) -> Any:
        return source.cluster()

    def nodes(request: Request) -> Any:
        return {"nodes": source.nodes()}

    def actors(request: Request) -> Any:
        limit = _int_param(request, "limit", DEFAULT_ACTOR_LIMIT, 1, MAX_LIMIT)
        return {"actors": source.actors(limit)}

    def tasks(request: Request) -> Any:
        return source.tasks(_int_param(request, "limit", DEFAULT_TASK_LIMIT, 1, MAX_LIMIT))

    def jobs(request: Request) -> Any:
        return {"jobs": source.jobs()}

    def placement_groups(request: Request) -> Any:
        return {"placement_groups": source.placement_groups()}

    def logs(request: Request) -> Any:
        q = request.query_params
        node_id = q.get("node_id", "")
        if not node_id:
            return {"logs": source.log_sources()}
        pid = _int_param(request, "pid", 0, 0, 2**31 - 1)
        name = q.get("name", "")
        if not pid and not name:
            raise ValueError("pass pid=<worker pid> or name=<log file name> with node_id")
        if name and ("/" in name or name.startswith(".")):
            raise ValueError(f"name must be a file name from /api/logs, got {name!r}")
        return source.log_tail(node_id, pid=pid, name=name, err=q.get("err") in ("1", "true"),
                               tail=_int_param(request, "tail", 200, 1, 5000))

    routes = [
        Route("/", index),
        Route("/api/cluster", _json(cluster)),
        Route("/api/nodes", _json(nodes)),
        Route("/api/actors", _json(actors)),
        Route("/api/tasks", _json(tasks)),
        Route("/api/jobs", _json(jobs)),
        Route("/api/placement_groups", _json(placement_groups)),
        Route("/api/logs", _json(logs)),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return TokenAuthMiddleware(Starlette(routes=routes), token=token)
