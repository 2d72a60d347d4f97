"""The Glance mirror against MariaDB (Debian's), through a user that may only read (make drills)."""

import os
import signal
import subprocess
import uuid

import pytest

from deploy.commands import follow_command
from deploy.processes import READY_DEADLINE_SECONDS, stop
from glance_database import GlanceDatabase
from helpers import ROOT
from mirroring import (
    assert_lists_like_glance_v1,
    change_glance_underneath,
    everything,
    load_reference,
    populate,
    sync,
    wait_for_log,
    wait_until,
)
from servers import MariaDB

pytestmark = pytest.mark.drill


@pytest.fixture(scope="module")
def mariadb():
    server = MariaDB()
    yield server
    server.stop()


@pytest.fixture
def glance_on_mariadb(mariadb):
    name = f"glance_{uuid.uuid4().hex[:8]}"
    writer_url, reader_url = mariadb.create_database(
        name, reader=f"reader_{name[-8:]}", schema="mysql-33.0.0.sql"
    )
    return GlanceDatabase(writer_url), reader_url


def test_mirror_of_mariadb_lists_what_glance_v1_listed(app, mirror_app, glance_on_mariadb):
    glance, reader_url = glance_on_mariadb
    marker = populate(glance)
    output = sync(mirror_app, reader_url)
    assert f"{len(glance.v1)} inserted, 0 updated, 0 unchanged" in output
    assert f"0 inserted, 0 updated, {len(glance.v1)} unchanged" in sync(mirror_app, reader_url)
    assert_lists_like_glance_v1(app, mirror_app, glance, marker)


def test_the_follower_keeps_up_while_glance_changes_underneath(
    app, mirror_app, glance_on_mariadb, tmp_path
):
    glance, reader_url = glance_on_mariadb
    marker = populate(glance)
    log = tmp_path / "follower.log"
    with log.open("w") as output:
        follower = subprocess.Popen(
            follow_command(interval=0.3, overlap=5, reconcile_every=1),
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": mirror_app.config["SQLALCHEMY_DATABASE_URI"],
                "GLANCE_DATABASE_URL": reader_url,
                # The drill purges in bulk, as an operator may: not what the guard is for.
                "MIRROR_DELETION_FLOOR": "1000",
            },
            stderr=output,
        )
    try:
        wait_for_log(log, follower, "full sync:")
        changes = change_glance_underneath(glance, marker, operations=300)
        load_reference(app, glance)
        expected = everything(app)
        wait_until(lambda: everything(mirror_app) == expected, "the mirror to catch up", log)
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=READY_DEADLINE_SECONDS) == 0
    finally:
        stop(follower)
    passes = [line for line in log.read_text().splitlines() if '"pass: ' in line]
    assert len(passes) >= 2, log.read_text()[-2000:]
    print(f"follower drill: {changes} changes in Glance, {len(passes)} passes to mirror them")
    assert_lists_like_glance_v1(app, mirror_app, glance, marker)
