"""The Glance mirror against MariaDB (Debian's), through a user that may only read (make drills)."""

import signal
import uuid

import pytest

from deploy.processes import READY_DEADLINE_SECONDS, stop
from glance_database import GlanceDatabase
from mirroring import (
    assert_lists_like_glance_v1,
    change_glance_underneath,
    populate,
    start_follower,
    sync,
    wait_for_log,
    wait_until_mirrored,
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
    follower = start_follower(mirror_app, reader_url, log, interval=0.3, reconcile_every=1)
    try:
        wait_for_log(log, follower, "full sync:")
        changes = change_glance_underneath(glance, marker, operations=300)
        wait_until_mirrored(app, mirror_app, glance, log)
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=READY_DEADLINE_SECONDS) == 0
    finally:
        stop(follower)
    passes = [line for line in log.read_text().splitlines() if '"pass: ' in line]
    assert len(passes) >= 2, log.read_text()[-2000:]
    print(f"follower drill: {changes} changes in Glance, {len(passes)} passes to mirror them")
    assert_lists_like_glance_v1(app, mirror_app, glance, marker)
