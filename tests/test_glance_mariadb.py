"""The Glance mirror against MariaDB (Debian's), through a user that may only read (make drills)."""

import json
import os
import random
import signal
import subprocess
import time
import uuid

import pytest
from test_glance_mirror import _assert_lists_like_glance_v1, _sync, populate

from app.db import db
from app.tokens import issue_token
from deploy.commands import follow_command
from deploy.glance_schemas import load_schema
from deploy.processes import READY_DEADLINE_SECONDS, stop
from glance_database import GlanceDatabase
from helpers import ROOT
from servers import MariaDB

pytestmark = pytest.mark.drill
EVERYTHING = "/v1.1/images/detail?is_public=none&changes-since=2000-01-01&limit=1000&sort_key=id"


@pytest.fixture(scope="module")
def mariadb():
    server = MariaDB()
    yield server
    server.stop()


@pytest.fixture
def glance_on_mariadb(mariadb):
    name = f"glance_{uuid.uuid4().hex[:8]}"
    writer_url, reader_url = mariadb.create_database(name, reader=f"reader_{name[-8:]}")
    load_schema(writer_url, "mysql-33.0.0.sql")
    return GlanceDatabase(writer_url), reader_url


def test_mirror_of_mariadb_lists_what_glance_v1_listed(app, mirror_app, glance_on_mariadb):
    glance, reader_url = glance_on_mariadb
    marker = populate(glance)
    output = _sync(mirror_app, reader_url)
    assert f"{len(glance.v1)} inserted, 0 updated, 0 unchanged" in output
    assert f"0 inserted, 0 updated, {len(glance.v1)} unchanged" in _sync(mirror_app, reader_url)
    _assert_lists_like_glance_v1(app, mirror_app, glance, marker)


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
            },
            stderr=output,
        )
    try:
        _wait_for_log(log, follower, "full sync:")
        changes = _change_glance_underneath(glance, marker, operations=300)
        reference = app.test_cli_runner().invoke(
            args=["images", "import", "-"], input=glance.jsonl()
        )
        assert reference.exit_code == 0, reference.output
        expected = _everything(app)
        _wait_until(lambda: _everything(mirror_app) == expected, "the mirror to catch up", log)
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=READY_DEADLINE_SECONDS) == 0
    finally:
        stop(follower)
    passes = [line for line in log.read_text().splitlines() if '"pass: ' in line]
    assert len(passes) >= 2, log.read_text()[-2000:]
    print(f"follower drill: {changes} changes in Glance, {len(passes)} passes to mirror them")
    _assert_lists_like_glance_v1(app, mirror_app, glance, marker)


def _change_glance_underneath(glance, marker, operations):
    """Random changes of every kind, back to back, while the follower runs."""
    rng = random.Random(7)
    ids = [image_id for image_id in glance.v1 if image_id != marker]
    for number in range(operations):
        live = [image_id for image_id in ids if image_id in glance.v1]
        target = rng.choice(live)
        action = rng.choice(
            ["create", "property", "member", "unmember", "rename", "delete", "purge"]
        )
        if action == "create":
            ids.append(
                glance.image(
                    visibility=rng.choice(["public", "private", "shared", "community"]),
                    name=f"new-{number}",
                    members={"p-member": "pending"} if rng.random() < 0.5 else {},
                )
            )
        elif action == "property" and not glance.v1[target]["deleted"]:
            glance.set_property(target, rng.choice(["os_distro", "hw_disk_bus"]), str(number))
        elif action == "member" and not glance.v1[target]["deleted"]:
            glance.add_member(target, f"p-{number}", "accepted")
        elif action == "unmember" and glance.v1[target]["members"]:
            glance.remove_member(target, glance.v1[target]["members"][0])
        elif action == "rename" and not glance.v1[target]["deleted"]:
            glance.update_image(target, name=f"renamed-{number}")
        elif action == "delete" and not glance.v1[target]["deleted"]:
            glance.delete_image(target)
        elif action == "purge":
            glance.purge(target)
    return operations


def _everything(app):

    with app.app_context():
        token = issue_token(db.session, project_id="admin-project", roles=["admin"], ttl_seconds=0)
    response = app.test_client().get(EVERYTHING, headers={"X-Auth-Token": token})
    return json.dumps(response.get_json(), sort_keys=True)


def _wait_for_log(log, process, text):
    _wait_until(lambda: text in log.read_text(), repr(text), log, process)


def _wait_until(condition, what, log, process=None):
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not condition():
        if process is not None:
            assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"waited in vain for {what}: {log.read_text()[-3000:]}"
        time.sleep(0.2)
