"""images sync-glance against Glance's real schema: the mirror lists what Glance v1 listed.

The oracle: `GlanceDatabase` (tests/glance_database.py) keeps, beside every write, the
image as Glance v1 presented it; those records are imported into a reference
catalogue, and for each caller and every filter of the contract the mirrored
catalogue must answer exactly what the reference answers.
"""

import datetime as dt
import threading
from contextlib import closing

import psycopg2
import pytest
import sqlalchemy as sa

from app.db import db, read
from app.freshness import catalogue_freshness
from app.images.schemas import SORT_DIRS, SORT_KEYS
from app.loading import mirror
from app.loading.glance_source import GlanceSource
from app.tokens import issue_token
from deploy.glance_schemas import load_schema
from glance_database import GlanceDatabase

POSTGRESQL_SCHEMAS = ["postgresql-33.0.0.sql", "postgresql-queens.sql", "postgresql-mitaka.sql"]
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


@pytest.fixture
def glance_url(new_database, request):
    url = new_database()
    load_schema(url, getattr(request, "param", "postgresql-33.0.0.sql"))
    return url


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


def _tokens(app):
    with app.app_context():
        return {
            caller: issue_token(db.session, project_id=project, roles=[role], ttl_seconds=0)
            for caller, (project, role, _) in CALLERS.items()
        }


def _listings(app, marker):
    """Every caller's answer to every filter, as JSON bodies."""
    client, tokens = app.test_client(), _tokens(app)
    answers = {}
    for caller, (_, _, visibility) in CALLERS.items():
        for query in [*FILTERS, f"marker={marker}", f"sort_key=name&marker={marker}"]:
            full = "&".join(part for part in (visibility, query) if part)
            response = client.get(
                f"/v1.1/images/detail?{full}", headers={"X-Auth-Token": tokens[caller]}
            )
            answers[caller, query] = (response.status_code, response.get_json())
    return answers


def _sync(app, url, *arguments):
    result = app.test_cli_runner().invoke(args=["images", "sync-glance", url, *arguments])
    assert result.exit_code == 0, result.output
    return result.output


def _assert_lists_like_glance_v1(app, mirror_app, glance, marker):
    reference = app.test_cli_runner().invoke(args=["images", "import", "-"], input=glance.jsonl())
    assert reference.exit_code == 0, reference.output
    expected, mirrored = _listings(app, marker), _listings(mirror_app, marker)
    differing = [key for key in expected if expected[key] != mirrored[key]]
    assert differing == [], differing[:5]
    assert sum(len(body["images"]) for _, body in expected.values()) > 500


@pytest.mark.parametrize("glance_url", POSTGRESQL_SCHEMAS, indirect=True)
def test_mirror_lists_what_glance_v1_listed(app, mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    marker = populate(glance)
    output = _sync(mirror_app, glance_url)
    assert f"{len(glance.v1)} inserted, 0 updated, 0 unchanged" in output
    _assert_lists_like_glance_v1(app, mirror_app, glance, marker)


def test_a_second_run_changes_nothing(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    _sync(mirror_app, glance_url)
    assert f"0 inserted, 0 updated, {len(glance.v1)} unchanged" in _sync(mirror_app, glance_url)


def test_the_source_is_only_read(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    with glance.engine.begin() as connection:
        connection.exec_driver_sql("CREATE ROLE glance_reader LOGIN")
        connection.exec_driver_sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO glance_reader")
    reader_url = sa.make_url(glance_url).set(username="glance_reader", password=None)
    try:
        _sync(mirror_app, reader_url.render_as_string(hide_password=False))
        source = GlanceSource(reader_url)
        with source.engine.connect() as connection, pytest.raises(sa.exc.InternalError):
            connection.exec_driver_sql("DELETE FROM image_tags")  # read-only session
    finally:
        with glance.engine.begin() as connection:
            connection.exec_driver_sql("DROP OWNED BY glance_reader")
            connection.exec_driver_sql("DROP ROLE glance_reader")


def test_unknown_columns_are_ignored_and_a_missing_one_is_named(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    with glance.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE images ADD COLUMN os_future text DEFAULT 'x'")
    _sync(mirror_app, glance_url)
    with glance.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE images DROP COLUMN min_ram")
    result = mirror_app.test_cli_runner().invoke(args=["images", "sync-glance", glance_url])
    assert result.exit_code == 1
    assert "Error: the Glance table images has no column min_ram" in result.output


def test_an_unreachable_source_is_a_one_line_error(mirror_app):
    url = "postgresql://nobody@127.0.0.1:9/glance"
    result = mirror_app.test_cli_runner().invoke(args=["images", "sync-glance", url])
    assert result.exit_code == 1
    assert "Error: a database could not be reached" in result.output


def _pass(mirror_app, url, overlap=dt.timedelta(0)):
    with mirror_app.app_context():
        return mirror.follow_pass(db.session, GlanceSource(url), overlap=overlap)


def test_following_applies_changes_members_late_commits_and_purges(app, mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    marker = populate(glance)
    assert _pass(mirror_app, glance_url).full
    shared = glance.image(visibility="shared", name="new-shared", members={"p-x": "pending"})
    glance.set_property(marker, "os_distro", "ubuntu-24.04")
    done = _pass(mirror_app, glance_url)
    assert not done.full and (done.summary.inserted, done.summary.updated) == (1, 1)

    # A membership change leaves the image's updated_at alone.
    glance.add_member(shared, "p-member", "accepted")
    assert _pass(mirror_app, glance_url).summary.updated == 1

    # A change that commits after a later one, with an earlier timestamp:
    # only the overlap window catches it.
    late = glance.clock - dt.timedelta(seconds=30)
    glance.update_image(shared, name="renamed")
    glance.v1[shared]["updated_at"] = late.isoformat()
    with glance.engine.begin() as connection:
        connection.execute(
            glance.images.update().where(glance.images.c.id == shared).values(updated_at=late)
        )
    assert _pass(mirror_app, glance_url).summary.updated == 0
    assert _pass(mirror_app, glance_url, overlap=dt.timedelta(minutes=5)).summary.updated == 1

    _assert_lists_like_glance_v1(app, mirror_app, glance, marker)


def test_reconcile_marks_purged_images_deleted_and_removes_purged_deleted_ones(
    mirror_app, glance_url
):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    gone, deleted_then_gone = glance.image(name="gone"), glance.image(name="deleted-then-gone")
    glance.delete_image(deleted_then_gone)
    _pass(mirror_app, glance_url)
    # A purge leaves no change for a pass to see.
    glance.purge(gone)
    glance.purge(deleted_then_gone)
    assert _pass(mirror_app, glance_url).summary.changed == 0
    with mirror_app.app_context():
        assert mirror.reconcile(db.session, GlanceSource(glance_url)) == (1, 1)
        rows = db.session.execute(
            sa.text(
                "SELECT id::text, status, deleted, updated_at > now() - interval '1 hour'"
                " FROM images WHERE id IN (:a, :b)"
            ),
            {"a": gone, "b": deleted_then_gone},
        ).all()
        # Changes-since pollers learn that `gone` went; the other was already
        # deleted. At the next reconcile `gone` goes too, as it went from Glance.
        assert [tuple(row) for row in rows] == [(gone, "deleted", True, True)]
        assert mirror.reconcile(db.session, GlanceSource(glance_url)) == (0, 1)
        assert mirror.reconcile(db.session, GlanceSource(glance_url)) == (0, 0)


def test_reconcile_refuses_an_empty_source(mirror_app, glance_url, new_database):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    _sync(mirror_app, glance_url)
    empty = new_database()
    load_schema(empty, "postgresql-33.0.0.sql")
    result = mirror_app.test_cli_runner().invoke(args=["images", "sync-glance", empty, "--prune"])
    assert result.exit_code == 1
    assert "has no images at all; not marking the whole catalogue deleted" in result.output
    with mirror_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM images WHERE deleted")) == 2


def test_prune_with_follow_is_refused_before_anything_runs(mirror_app):
    result = mirror_app.test_cli_runner().invoke(
        args=["images", "sync-glance", "nodriver://glance", "--follow", "--prune"]
    )
    assert result.exit_code == 2
    assert "--prune is for one run; --follow reconciles on its own" in result.output


def test_a_restarted_follower_resumes_from_its_watermark(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    assert _pass(mirror_app, glance_url).full
    with mirror_app.app_context():
        (state,) = read(catalogue_freshness).mirrors
        db.engine.dispose()  # as if the process ended
    # The newest change that still exists (the last image was created, then purged).
    assert (
        glance.clock - dt.timedelta(seconds=5)
        <= state["watermark"].replace(tzinfo=None)
        < glance.clock
    )
    glance.image(name="after-restart")
    done = _pass(mirror_app, glance_url)
    assert not done.full and done.summary.inserted == 1 and done.summary.unchanged == 0


def test_the_follower_waits_out_a_missing_source_and_then_mirrors_it(
    mirror_app, new_database, database_url
):
    # The source's database does not exist yet: every pass fails until it does.
    # Its URL names no driver, as an operator would write it.
    name = "glance_later"
    url = (
        sa.make_url(database_url)
        .set(drivername="postgresql", database=name)
        .render_as_string(hide_password=False)
    )
    stop, log = threading.Event(), _Log()

    def follow():
        with mirror_app.app_context():
            mirror.follow(
                db.session,
                url,
                interval=0.2,
                overlap=dt.timedelta(0),
                reconcile_every=3600,
                stop=stop,
                log=log,
            )

    follower, renamed = threading.Thread(target=follow), False
    try:
        follower.start()
        log.wait_for("pass failed, retrying")
        with mirror_app.app_context():
            assert db.session.scalar(sa.text("SELECT count(*) FROM images")) == 0
            (state,) = read(catalogue_freshness).mirrors
            assert state["last_error"] and state["last_success_at"] is None
        # The source appears whole: made under another name, then renamed
        # (a database without Glance's tables would end the follower).
        staged = new_database(f"{name}_staged")
        load_schema(staged, "postgresql-33.0.0.sql")
        glance = GlanceDatabase(staged)
        populate(glance)
        glance.engine.dispose()
        _rename_database(database_url, f"{name}_staged", name)
        renamed = True
        log.wait_for("full sync:")
    finally:
        stop.set()
        follower.join(timeout=60)
        if renamed:  # back under the name new_database drops when the test ends
            _rename_database(database_url, name, f"{name}_staged")
    assert not follower.is_alive()
    with mirror_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM images")) == len(glance.v1)
        # The failures and the success are one source's state: the error is cleared.
        (state,) = read(catalogue_freshness).mirrors
        assert state["last_success_at"] and state["last_error"] is None


def _rename_database(server_url, old, new):
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        admin.cursor().execute(f"ALTER DATABASE {old} RENAME TO {new}")


class _Log:
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


def test_metrics_and_readyz_show_the_mirrors_lag_and_last_pass(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    _pass(mirror_app, glance_url)
    client = mirror_app.test_client()
    (state,) = client.get("/readyz").get_json()["glance_mirrors"]
    assert state["source"] == GlanceSource(glance_url).name and "***" in state["source"]
    assert 0 <= state["lag_seconds"] < 600 and state["last_error"] is None
    assert state["watermark"].startswith("2024-01-01T00:00:")
    metrics = client.get("/metrics").get_data(as_text=True)
    label = f'{{source="{state["source"]}"}}'
    for name in ("lag_seconds", "last_success_timestamp_seconds", "watermark_timestamp_seconds"):
        assert f"image_catalogue_mirror_{name}{label} " in metrics
    assert "image_catalogue_mirror_last_error_timestamp_seconds{" not in metrics
