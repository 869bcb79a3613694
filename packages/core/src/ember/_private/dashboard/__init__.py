"""Ember's dashboard: a web page served by the head, showing the cluster live.

A process of its own on the head (``python -m ember._private.dashboard.main``,
started by ``ember start --head`` and ``ember.init()``, as Ray starts its
dashboard), serving:

* ``/``: a single page (``static/``: HTML, CSS and one script, no build step,
  nothing fetched from elsewhere) with the cluster's nodes (CPU, GPU, memory,
  object store), actors, tasks (state, duration, node, error), jobs, placement
  groups and each worker's log; it polls the JSON API every 1.5 s;
* ``/api/...``: that JSON (app.py), read through the state API (source.py) and
  shaped by pure functions (views.py).

Everything needs the cluster token (http_auth.py): open the page once as
``http://127.0.0.1:8265/?token=<token>`` and a cookie carries it from then on.
It is an optional extra, so core stays small: ``pip install "ember-core[dashboard]"``
(starlette and uvicorn). launch.py decides whether and where the head starts it.
"""
from __future__ import annotations

import importlib.util

DEFAULT_PORT = 8265          # Ray's dashboard port
DEFAULT_HOST = "127.0.0.1"
INSTALL_HINT = 'pip install "ember-core[dashboard]"'
REQUIREMENTS = ("starlette", "uvicorn")


def missing_requirements() -> list[str]:
    """The dashboard's packages not installed here (empty: it can run).

    >>> missing_requirements()
    []
    """
    return [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]
