"""Liveness and readiness probes for load balancers and orchestrators.

They answer anyone, so they tell states and ages only: no user, host,
database name or error text (those go to the log, and to /metrics).
"""

import datetime as dt

from flask import Blueprint, current_app
from werkzeug.exceptions import ServiceUnavailable

from app import db as database
from app.freshness import catalogue_freshness, mirror_failing
from app.web.observability import log_fields

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process runs."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Answer 200 when a database answers reads and its schema is not behind this code's.

    The body tells each database's state and lag, and each Glance mirror's
    state and ages.

    :raises 503: no database answers (or too slowly), or the schema is older than
        the code's. A newer one serves: old code runs on it during a rolling upgrade.
    """
    problem = database.read(database.schema_problem)
    if problem:
        raise ServiceUnavailable(description=f"Not ready: {problem}.")
    mirrors = database.read(catalogue_freshness).mirrors
    return {
        "status": "ready",
        "databases": _databases(),
        "glance_mirrors": [_mirror(state) for state in mirrors],
    }


def _databases():
    """Each database's state and lag; why one is unavailable goes to the log only."""
    databases = database.status()
    for name, state in databases.items():
        error = state.pop("error", None)
        if error:
            current_app.logger.warning(
                "readyz: database %s unavailable: %s", name, error, extra=log_fields()
            )
    return databases


def _mirror(state):
    """A Glance mirror's state; its lag does not make the service unready (/metrics alerts)."""
    lag = None
    if state["last_success_at"] is not None:
        lag = round((dt.datetime.now(dt.UTC) - state["last_success_at"]).total_seconds(), 3)
    return {
        "source": state["source"],
        "state": "failing" if mirror_failing(state) else "ok",
        "last_success_at": _iso(state["last_success_at"]),
        "lag_seconds": lag,
        "watermark": _iso(state["watermark"]),
        "last_error_at": _iso(state["last_error_at"]),
        "refused_deletions": state["refused_deletions"],
    }


def _iso(moment):
    return None if moment is None else moment.isoformat()
