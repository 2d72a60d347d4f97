"""Liveness and readiness probes for load balancers and orchestrators."""

import sqlalchemy as sa
from flask import Blueprint

from app.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process runs."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Answer 200 when the database answers.

    :raises 503: the database is unreachable or too slow.
    """
    db.session.execute(sa.text("SELECT 1"))
    return {"status": "ready"}
