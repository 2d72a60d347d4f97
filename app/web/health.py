"""Liveness and readiness probes for load balancers and orchestrators.

They answer anyone, so they tell states and ages only: no user, host,
database name or error text (those go to the log, and to /metrics). The
shipped proxies keep /readyz, which names the databases, to the metrics
allow-list (docs/operations.md).
"""

import datetime as dt
import threading
import time

from flask import Blueprint, current_app
from werkzeug.exceptions import ServiceUnavailable

from app import db as database
from app.freshness import catalogue_freshness, mirror_failing

bp = Blueprint("health", __name__)

# How old an answer /readyz may give: every caller of a worker shares one
# probe at a time, so a flood of /readyz costs each worker one probe per this time.
READINESS_MAX_AGE_SECONDS = 2.0


def init_app(app):
    # The first probe of a worker may wait for one database's connect timeout.
    first_wait = app.config["DB_CONNECT_TIMEOUT"] + 1.0
    app.extensions["readiness"] = Readiness(app, READINESS_MAX_AGE_SECONDS, first_wait)
    app.register_blueprint(bp)


@bp.get("/healthz")
def healthz():
    """Answer 200 while the process runs."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Answer 200 when a database answers reads and its schema is not behind this code's.

    The body tells each database's state and lag, and each Glance mirror's
    state and ages. The answer is this worker's latest probe, at most
    READINESS_MAX_AGE_SECONDS old (a new one runs in the background): it never
    waits on a database, but for the first probe, at most `first_wait`.

    :raises 503: no database answers (or too slowly), or the schema is older than
        the code's. A newer one serves: old code runs on it during a rolling upgrade.
    """
    outcome = current_app.extensions["readiness"].latest()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


class Readiness:
    """The latest readiness probe of this worker, probed again in the background when stale.

    One probe runs at a time, whatever the number of callers; a caller gets
    the latest outcome at once (a body, or the exception to answer with) and
    waits only while the worker has none yet, at most `first_wait` seconds.
    """

    def __init__(self, app, max_age, first_wait):
        self.app, self.max_age, self.first_wait = app, max_age, first_wait
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._outcome = None
        self._probed_at = -max_age
        self._probing = False

    def latest(self):
        with self._lock:
            stale = time.monotonic() - self._probed_at >= self.max_age
            if stale and not self._probing:
                self._probing = True
                threading.Thread(target=self._probe, name="readiness", daemon=True).start()
        if not self._first.wait(self.first_wait):
            return ServiceUnavailable(
                description="Not ready: the databases are still being checked.", retry_after=1
            )
        return self._outcome

    def _probe(self):
        try:
            with self.app.app_context():
                outcome = _probe()
        except Exception as error:  # the route answers it: a 503, or a 500 for a bug
            outcome = error
        with self._lock:
            self._outcome, self._probed_at, self._probing = outcome, time.monotonic(), False
        self._first.set()


def _probe():
    """The body of a ready answer, or ServiceUnavailable.

    :raises DatabaseUnavailable: no database answers.
    """
    problem = database.read(database.schema_problem)
    if problem:
        return ServiceUnavailable(description=f"Not ready: {problem}.")
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
            # Probed in the background: no request, so no request id.
            current_app.logger.warning("readyz: database %s unavailable: %s", name, error)
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
