"""Liveness and readiness probes for load balancers and orchestrators."""

import datetime as dt

from flask import Blueprint
from werkzeug.exceptions import ServiceUnavailable

from app.db import db, schema_problem
from app.images import repository

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process runs."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Answer 200 when the database answers and its schema is the one this code needs.

    :raises 503: the database is unreachable or too slow, or its schema is older or newer.
    """
    problem = schema_problem(db.session)
    if problem:
        raise ServiceUnavailable(description=f"Not ready: {problem}.")
    mirrors = repository.catalogue_freshness(db.session).mirrors
    return {"status": "ready", "glance_mirrors": [_mirror(state) for state in mirrors]}


def _mirror(state):
    """A Glance mirror's state; its lag does not make the service unready (/metrics alerts)."""
    lag = None
    if state.last_success_at is not None:
        lag = round((dt.datetime.now(dt.UTC) - state.last_success_at).total_seconds(), 3)
    return {
        "source": state.source,
        "last_success_at": _iso(state.last_success_at),
        "lag_seconds": lag,
        "watermark": _iso(state.watermark),
        "last_error": state.last_error,
        "last_error_at": _iso(state.last_error_at),
    }


def _iso(moment):
    return None if moment is None else moment.isoformat()
