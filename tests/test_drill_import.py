"""Drill: an import killed just before it commits leaves the old catalogue, unchanged."""

import datetime as dt
import json
import os
import signal
import subprocess
import time
from contextlib import closing

import psycopg2
import pytest
import sqlalchemy as sa

from app.loading.synthetic import generate_records
from deploy.commands import catalogue_command
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import ROOT, fingerprint

pytestmark = pytest.mark.drill


def test_killed_import_leaves_the_old_catalogue(app, make_image, database_url, tmp_path):
    for number in range(5):
        make_image(name=f"kept-{number}")
    before = fingerprint(app)
    path = tmp_path / "big.jsonl"
    with path.open("w") as out:
        records = generate_records(
            150_000, seed=9, projects=10, until=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        )
        for _, record in records:
            # An import file lists members as project ids (records map them to can_share).
            line = {**record, "members": list(record["members"])}
            out.write(json.dumps(line, default=str) + "\n")
    importer_url = (
        sa.make_url(database_url)
        .update_query_dict({"application_name": "drill-import"})
        .render_as_string(hide_password=False)
    )
    importer = subprocess.Popen(
        catalogue_command("images", "import", str(path)),
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": importer_url},
        stderr=subprocess.DEVNULL,
    )
    with closing(psycopg2.connect(database_url)) as watcher:
        # Autocommit: pg_stat_activity is read afresh in each transaction only.
        watcher.autocommit = True
        # The commit window: the upsert from the staged rows runs, in the
        # import's one transaction, just before it commits.
        seen = _wait_for_import_query(watcher, importer, "INSERT INTO images (")
        importer.kill()
        importer.wait()
        _wait_until_import_backend_is_gone(watcher)
    assert importer.returncode == -signal.SIGKILL
    assert seen.startswith("DELETE FROM image_properties WHERE image_id IN")
    assert fingerprint(app) == before


def _wait_for_import_query(watcher, importer, fragment):
    """Wait until the import's backend runs a query containing `fragment`; return it."""
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    cursor = watcher.cursor()
    while time.monotonic() < deadline:
        cursor.execute(
            "SELECT query FROM pg_stat_activity"
            " WHERE application_name = 'drill-import' AND state = 'active'"
        )
        for (query,) in cursor.fetchall():
            if fragment in query:
                return query
        if importer.poll() is not None:
            pytest.fail(f"the import exited ({importer.returncode}) before {fragment!r} was seen")
        time.sleep(0.01)
    pytest.fail(f"the import's backend never showed {fragment!r}")


def _wait_until_import_backend_is_gone(watcher):
    # PostgreSQL notices the dead client when the statement ends, then rolls back.
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    cursor = watcher.cursor()
    while time.monotonic() < deadline:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'drill-import'"
        )
        if cursor.fetchone()[0] == 0:
            return
        time.sleep(0.05)
    pytest.fail("the killed import's backend kept running")
