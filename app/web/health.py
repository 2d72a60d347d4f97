"""Liveness and readiness probes for load balancers and orchestrators."""

from flask import Blueprint
from werkzeug.exceptions import ServiceUnavailable

from app.db import db, schema_problem

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
    return {"status": "ready"}
