"""What the Glance mirror's tests share: the reading user, populating Glance, the oracle.

The oracle: `GlanceDatabase` (tests/glance_database.py) keeps, beside every
write, the image as Glance v1 presented it; those records are imported into a
reference catalogue, and for each caller and every filter of the contract the
mirrored catalogue must answer exactly what the reference answers.
"""

import datetime as dt
import json
import os
import random
import subprocess
import threading
import time
from contextlib import closing

import psycopg2
import sqlalchemy as sa

from app.db import db
from app.images.query import SORT_DIRS, SORT_KEYS
from app.loading import mirror
from app.loading.glance_source import GlanceSource
from app.loading.sources import SourceLock
from app.tokens import issue_token
from deploy.commands import follow_command
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import ROOT, BackgroundLoop

# Every image, deleted and hidden ones too, of every project: what an admin poller sees.
EVERYTHING = "/v1.1/images/detail?is_public=none&changes-since=2000-01-01&limit=1000&sort_key=id"
CALLERS = {
    "admin, is_public=none": ("admin-project", "admin", "is_public=none"),
    "member project": ("p-member", "member", ""),
    "tenant-less": (None, "member", ""),
}


FILTERS = [
    "",
    "name=ubuntu",
    "name=in:ubuntu,cirros",
    "status=active",
    "status=killed",
    "container_format=bare",
    "disk_format=raw",
    "size_min=1500",
    "size_max=1500",
    "changes-since=2000-01-01",
    "changes-since=2024-01-01T00:00:30",
    "is_public=true",
    "is_public=false",
    "protected=true",
    "min_ram=512",
    "min_disk=10",
    "property-os_distro=ubuntu",
    "property-os_distro=ubuntu&property-architecture=x86_64",
    "limit=3",
    *(f"sort_key={key}&sort_dir={direction}" for key in SORT_KEYS for direction in SORT_DIRS),
]


def with_reader(url):
    """`url` as a user with exactly the grants docs/operations.md gives the mirror.

    A MySQL URL is left alone: the MariaDB fixture makes that user itself.
    """
    if sa.make_url(url).get_backend_name() != "postgresql":
        return url
    database = sa.make_url(url).database
    with closing(psycopg2.connect(url)) as connection:
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'catalogue_mirror'")
        if cursor.fetchone() is None:
            cursor.execute("CREATE ROLE catalogue_mirror LOGIN")
        cursor.execute(f"GRANT CONNECT ON DATABASE {database} TO catalogue_mirror")
        cursor.execute("GRANT USAGE ON SCHEMA public TO catalogue_mirror")
        cursor.execute(
            "GRANT SELECT ON images, image_properties, image_members TO catalogue_mirror"
        )
    return sa.make_url(url).set(username="catalogue_mirror").render_as_string(hide_password=False)


def source_of(url, name="glance"):
    return GlanceSource(with_reader(url), name=name)


def populate(glance):
    """Every kind of image the issue names; return a public image's id (a marker for all)."""
    marker = glance.image(
        name="ubuntu",
        size=2000,
        min_ram=512,
        min_disk=10,
        protected=True,
        properties={"os_distro": "ubuntu", "architecture": "x86_64"},
    )
    glance.image(name="cirros", disk_format="raw", size=1000, properties={"os_distro": "cirros"})
    glance.image(visibility="private", owner="p-member", name="own-private")
    glance.image(visibility="private", name="other-private")
    for status in ("pending", "accepted", "rejected"):
        glance.image(visibility="shared", name=f"shared-{status}", members={"p-member": status})
    glance.image(visibility="shared", name="shared-elsewhere", members={"p-other": "accepted"})
    # Not shared since Ocata (private), but shared before it (non-public with members).
    glance.image(visibility="private", name="private-with-member", members={"p-member": "pending"})
    glance.image(visibility="community", name="community")
    glance.image(status="killed", name="killed")
    glance.image(status="queued", name=None, size=None, checksum=None, disk_format=None)
    deleted = glance.image(name="deleted", properties={"os_distro": "ubuntu"})
    glance.delete_image(deleted)
    pending = glance.image(name="pending-delete")
    glance.delete_image(pending, status="pending_delete")
    changed = glance.image(name="ubuntu", properties={"os_distro": "debian", "old": "x"})
    glance.set_property(changed, "os_distro", "ubuntu")
    glance.set_property(changed, "new", "y")
    glance.delete_property(changed, "old")
    regrouped = glance.image(visibility="shared", name="regrouped", members={"p-other": "pending"})
    glance.add_member(regrouped, "p-member", "accepted")
    glance.remove_member(regrouped, "p-other")
    left = glance.image(visibility="shared", name="left", members={"p-member": "accepted"})
    glance.remove_member(left, "p-member")
    glance.purge(glance.image(name="purged"))
    return marker


def caller_tokens(app):
    with app.app_context():
        return {
            caller: issue_token(db.session, project_id=project, roles=[role], ttl_seconds=0)
            for caller, (project, role, _) in CALLERS.items()
        }


def listings(app, marker):
    """Every caller's answer to every filter, as JSON bodies."""
    client, tokens = app.test_client(), caller_tokens(app)
    answers = {}
    for caller, (_, _, visibility) in CALLERS.items():
        for query in [*FILTERS, f"marker={marker}", f"sort_key=name&marker={marker}"]:
            full = "&".join(part for part in (visibility, query) if part)
            response = client.get(
                f"/v1.1/images/detail?{full}", headers={"X-Auth-Token": tokens[caller]}
            )
            answers[caller, query] = (response.status_code, response.get_json())
    return answers


def sync(app, url, *arguments):
    result = sync_command(app, url, *arguments)
    assert result.exit_code == 0, result.output
    return result.output


def sync_command(app, url, *arguments):
    return app.test_cli_runner().invoke(
        args=["images", "sync-glance", with_reader(url), *arguments]
    )


def load_reference(app, glance):
    """Make `app`'s catalogue exactly the oracle's: what Glance v1 shows now, imported."""
    with app.app_context():
        db.session.execute(sa.text("TRUNCATE images CASCADE"))
        db.session.commit()
    reference = app.test_cli_runner().invoke(args=["images", "import", "-"], input=glance.jsonl())
    assert reference.exit_code == 0, reference.output


def assert_lists_like_glance_v1(app, mirror_app, glance, marker):
    load_reference(app, glance)
    expected, mirrored = listings(app, marker), listings(mirror_app, marker)
    differing = [key for key in expected if expected[key] != mirrored[key]]
    assert differing == [], differing[:5]
    assert sum(len(body["images"]) for _, body in expected.values()) > 500


def follow_pass(mirror_app, url, overlap=dt.timedelta(0)):
    with mirror_app.app_context():
        return mirror.follow_pass(db.session, source_of(url), overlap=overlap)


class Log:
    """A logger stand-in that tests can wait on."""

    def __init__(self):
        self.lines, self.changed = [], threading.Condition()

    def _add(self, message):
        with self.changed:
            self.lines.append(message)
            self.changed.notify_all()

    info = warning = error = _add

    def wait_for(self, text, timeout=120):
        with self.changed:
            found = self.changed.wait_for(lambda: any(text in line for line in self.lines), timeout)
        assert found, f"{text!r} never logged; saw {self.lines[-5:]}"


class Follower(BackgroundLoop):
    """`images sync-glance --follow` in a thread of the test, until the `with` block ends.

    `error` is what ended it early, if anything; `log` what it said.
    """

    join_seconds = 120

    def __init__(self, app, url, *, name="glance", interval=0.2, reconcile_every=3600, **limits):
        super().__init__()
        self.app, self.url, self.name = app, url, name
        self.interval, self.reconcile_every = interval, reconcile_every
        self.limits = {"give_up": 3600, "guard": mirror.DeletionGuard(), **limits}
        self.log, self.error = Log(), None

    def run(self):
        with self.app.app_context():
            lock = SourceLock(self.app.config["SQLALCHEMY_DATABASE_URI"], self.name)
            try:
                mirror.follow(
                    db.session,
                    lambda: GlanceSource(self.url, name=self.name, connect_timeout=2),
                    lock,
                    interval=self.interval,
                    overlap=dt.timedelta(0),
                    reconcile_every=self.reconcile_every,
                    stop=self.stop,
                    log=self.log,
                    **self.limits,
                )
            except Exception as error:  # the test reads it
                self.error = error
            finally:
                lock.release()
                db.engine.dispose()

    def __exit__(self, *exc_info):
        super().__exit__(*exc_info)
        assert not self.is_alive(), "the follower did not stop"


def change_glance_underneath(glance, marker, operations):
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


def everything(app):
    """EVERYTHING as an admin of `app` sees it, as comparable text."""
    with app.app_context():
        token = issue_token(db.session, project_id="admin-project", roles=["admin"], ttl_seconds=0)
    response = app.test_client().get(EVERYTHING, headers={"X-Auth-Token": token})
    return json.dumps(response.get_json(), sort_keys=True)


def start_follower(mirror_app, glance_url, log, *, interval, reconcile_every):
    """`images sync-glance --follow` from `glance_url` into `mirror_app`'s catalogue,
    as a process of its own writing to the file `log`."""
    with log.open("w") as output:
        return subprocess.Popen(
            follow_command(interval=interval, overlap=5, reconcile_every=reconcile_every),
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": mirror_app.config["SQLALCHEMY_DATABASE_URI"],
                "GLANCE_DATABASE_URL": glance_url,
                # The drills purge in bulk, as an operator may: not what the guard is for.
                "MIRROR_DELETION_FLOOR": "1000",
            },
            stderr=output,
        )


def wait_until_mirrored(app, mirror_app, glance, log, process=None):
    """Until `mirror_app` answers what a catalogue imported from `glance`'s oracle answers."""
    load_reference(app, glance)
    expected = everything(app)
    wait_until(lambda: everything(mirror_app) == expected, "the mirror to catch up", log, process)


def wait_for_log(log, process, text):
    wait_until(lambda: text in log.read_text(), repr(text), log, process)


def wait_until(condition, what, log, process=None):
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while not condition():
        if process is not None:
            assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"waited in vain for {what}: {log.read_text()[-3000:]}"
        time.sleep(0.2)
