"""images sync-glance against Glance's real schema: the mirror lists what Glance v1 listed.

The oracle is tests/mirroring.py's: the mirrored catalogue answers every
caller and filter exactly as a catalogue imported from Glance v1's view does.
"""

import datetime as dt
from contextlib import closing

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.db import db, read
from app.freshness import catalogue_freshness
from app.loading import mirror
from app.loading.glance_source import GlanceSource
from app.tokens import issue_token
from deploy.glance_schemas import load_schema
from glance_database import GlanceDatabase
from mirroring import (
    Follower,
    assert_lists_like_glance_v1,
    follow_pass,
    populate,
    source_of,
    sync,
    sync_command,
    with_reader,
)

GUARD = mirror.DeletionGuard()
POSTGRESQL_SCHEMAS = ["postgresql-33.0.0.sql", "postgresql-queens.sql", "postgresql-mitaka.sql"]


@pytest.mark.parametrize("glance_url", POSTGRESQL_SCHEMAS, indirect=True)
def test_mirror_lists_what_glance_v1_listed(app, mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    marker = populate(glance)
    output = sync(mirror_app, glance_url)
    assert f"{len(glance.v1)} inserted, 0 updated, 0 unchanged" in output
    assert_lists_like_glance_v1(app, mirror_app, glance, marker)


def test_a_second_run_changes_nothing(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    sync(mirror_app, glance_url)
    assert f"0 inserted, 0 updated, {len(glance.v1)} unchanged" in sync(mirror_app, glance_url)


def test_the_source_is_only_read(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    sync(mirror_app, glance_url)  # as the user with the documented grants only
    # Even a user who may write gets read-only sessions from the mirror.
    source = GlanceSource(glance_url, name="glance")
    with source.engine.connect() as connection, pytest.raises(sa.exc.InternalError):
        connection.exec_driver_sql("DELETE FROM image_tags")


def test_unknown_columns_are_ignored_and_a_missing_one_is_named(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    with glance.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE images ADD COLUMN os_future text DEFAULT 'x'")
    sync(mirror_app, glance_url)
    with glance.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE images DROP COLUMN min_ram")
    result = sync_command(mirror_app, glance_url)
    assert result.exit_code == 1
    assert "Error: the Glance table images has no column min_ram" in result.output


def test_an_unreachable_source_is_a_one_line_error(mirror_app):
    url = "postgresql://nobody@127.0.0.1:9/glance"
    result = mirror_app.test_cli_runner().invoke(args=["images", "sync-glance", url])
    assert result.exit_code == 1
    assert "Error: a database could not be reached" in result.output


def test_following_applies_changes_members_late_commits_and_purges(app, mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    marker = populate(glance)
    assert follow_pass(mirror_app, glance_url).full
    shared = glance.image(visibility="shared", name="new-shared", members={"p-x": "pending"})
    glance.set_property(marker, "os_distro", "ubuntu-24.04")
    done = follow_pass(mirror_app, glance_url)
    assert not done.full and (done.summary.inserted, done.summary.updated) == (1, 1)

    # A membership change leaves the image's updated_at alone.
    glance.add_member(shared, "p-member", "accepted")
    assert follow_pass(mirror_app, glance_url).summary.updated == 1

    # A change that commits after a later one, with an earlier timestamp:
    # only the overlap window catches it.
    late = glance.clock - dt.timedelta(seconds=30)
    glance.update_image(shared, name="renamed")
    glance.v1[shared]["updated_at"] = late.isoformat()
    with glance.engine.begin() as connection:
        connection.execute(
            glance.images.update().where(glance.images.c.id == shared).values(updated_at=late)
        )
    assert follow_pass(mirror_app, glance_url).summary.updated == 0
    assert follow_pass(mirror_app, glance_url, overlap=dt.timedelta(minutes=5)).summary.updated == 1

    assert_lists_like_glance_v1(app, mirror_app, glance, marker)


def test_reconcile_marks_purged_images_deleted_and_removes_purged_deleted_ones(
    mirror_app, glance_url
):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    gone, deleted_then_gone = glance.image(name="gone"), glance.image(name="deleted-then-gone")
    glance.delete_image(deleted_then_gone)
    follow_pass(mirror_app, glance_url)
    # A purge leaves no change for a pass to see.
    glance.purge(gone)
    glance.purge(deleted_then_gone)
    assert follow_pass(mirror_app, glance_url).summary.changed == 0
    with mirror_app.app_context():
        assert mirror.reconcile(db.session, source_of(glance_url), guard=GUARD) == (1, 1)
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
        assert mirror.reconcile(db.session, source_of(glance_url), guard=GUARD) == (0, 1)
        assert mirror.reconcile(db.session, source_of(glance_url), guard=GUARD) == (0, 0)


class _WrittenWhileListed(GlanceSource):
    """A source that, once reconcile has read its ids, gets an image written through Glance,
    applied at once as a v1 write applies it (app/images/writes.py)."""

    def __init__(self, url, glance):
        super().__init__(with_reader(url), name="glance")
        self.glance, self.written = glance, None

    def ids(self, batch=50_000):
        yield from list(super().ids(batch))
        self.written = self.glance.image(name="written-meanwhile")
        with Session(db.engine) as writer:
            mirror.apply_images(writer, self, [self.written])


def test_reconcile_leaves_alone_an_image_written_after_it_read_glances_ids(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    follow_pass(mirror_app, glance_url)
    source = _WrittenWhileListed(glance_url, glance)
    with mirror_app.app_context():
        assert mirror.reconcile(db.session, source, guard=GUARD) == (0, 0)
        status = db.session.execute(
            sa.text("SELECT status, deleted FROM images WHERE id = :id"), {"id": source.written}
        ).one()
    assert tuple(status) == ("active", False)


def test_reconcile_refuses_an_empty_source(mirror_app, glance_url, new_database):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    sync(mirror_app, glance_url)
    empty = new_database()
    load_schema(empty, "postgresql-33.0.0.sql")
    result = sync_command(mirror_app, empty, "--prune")
    assert result.exit_code == 1
    assert "Glance has no images at all; not marking the source's 15 images deleted" in (
        result.output
    )
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
    assert follow_pass(mirror_app, glance_url).full
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
    done = follow_pass(mirror_app, glance_url)
    assert not done.full and done.summary.inserted == 1 and done.summary.unchanged == 0


def test_the_follower_waits_out_a_missing_source_and_then_mirrors_it(
    mirror_app, new_database, database_url
):
    # The source's database does not exist yet: every pass fails until it does.
    # Its URL names no driver, as an operator would write it.
    name = "glance_later"
    url = (
        sa.make_url(database_url)
        .set(drivername="postgresql", database=name, username="catalogue_mirror")
        .render_as_string(hide_password=False)
    )
    renamed = False
    try:
        with Follower(mirror_app, url) as follower:
            follower.log.wait_for("pass failed, retrying")
            with mirror_app.app_context():
                assert db.session.scalar(sa.text("SELECT count(*) FROM images")) == 0
                (state,) = read(catalogue_freshness).mirrors
                assert state["last_error"] and state["last_success_at"] is None
            # The source appears whole: made under another name, then renamed
            # (a database without Glance's tables would end the follower).
            staged = new_database(f"{name}_staged")
            load_schema(staged, "postgresql-33.0.0.sql")
            with_reader(staged)
            glance = GlanceDatabase(staged)
            populate(glance)
            glance.engine.dispose()
            _rename_database(database_url, f"{name}_staged", name)
            renamed = True
            follower.log.wait_for("full sync:")
    finally:
        if renamed:  # back under the name new_database drops when the test ends
            _rename_database(database_url, name, f"{name}_staged")
    assert follower.error is None
    with mirror_app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM images")) == len(glance.v1)
        # The failures and the success are one source's state: the error is cleared.
        (state,) = read(catalogue_freshness).mirrors
        assert state["last_success_at"] and state["last_error"] is None


def _rename_database(server_url, old, new):
    with closing(psycopg2.connect(server_url)) as admin:
        admin.autocommit = True
        admin.cursor().execute(f"ALTER DATABASE {old} RENAME TO {new}")


def test_metrics_and_readyz_show_the_mirrors_lag_and_last_pass(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    follow_pass(mirror_app, glance_url)
    client = mirror_app.test_client()
    (state,) = client.get("/readyz").get_json()["glance_mirrors"]
    assert state["source"] == "glance" and state["state"] == "ok"
    assert 0 <= state["lag_seconds"] < 600 and state["last_error_at"] is None
    assert state["watermark"].startswith("2024-01-01T00:00:")
    metrics = client.get("/metrics").get_data(as_text=True)
    label = '{source="glance"}'
    for name in ("lag_seconds", "last_success_timestamp_seconds", "watermark_timestamp_seconds"):
        assert f"image_catalogue_mirror_{name}{label} " in metrics
    assert f"image_catalogue_mirror_failing{label} 0.0" in metrics
    assert "image_catalogue_mirror_last_error_timestamp_seconds{" not in metrics


def test_members_can_share_comes_across(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    image_id = glance.image(
        visibility="shared", owner="p-owner", members={"p-a": "accepted", "p-b": "pending"}
    )
    with glance.engine.begin() as connection:
        connection.execute(
            glance.members.update()
            .where(glance.members.c.image_id == image_id, glance.members.c.member == "p-a")
            .values(can_share=True)
        )
    sync(mirror_app, glance_url)
    with mirror_app.app_context():
        token = issue_token(db.session, project_id="p-owner", roles=["member"], ttl_seconds=0)
    answer = mirror_app.test_client().get(
        f"/v1/images/{image_id}/members", headers={"X-Auth-Token": token}
    )
    assert answer.get_json() == {
        "members": [
            {"member_id": "p-a", "can_share": True},
            {"member_id": "p-b", "can_share": False},
        ]
    }


def test_an_empty_glance_owner_or_member_is_no_project(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    image_id = glance.image(
        visibility="shared", owner="", members={"": "accepted", "p-a": "accepted"}
    )
    sync(mirror_app, glance_url)
    with mirror_app.app_context():
        row = db.session.execute(
            sa.text("SELECT owner FROM images WHERE id = :id"), {"id": image_id}
        ).one()
        members = db.session.scalars(
            sa.text("SELECT member FROM image_members WHERE image_id = :id"), {"id": image_id}
        ).all()
    assert (row.owner, members) == (None, ["p-a"])


def test_an_image_image_show_could_not_answer_is_not_mirrored(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    kept = glance.image(properties={"os_distro": "debian"})
    refused = glance.image(properties={f"p{n:03d}": "v" * 600 for n in range(128)})
    output = sync(mirror_app, glance_url)
    assert "1 inserted, 0 updated, 0 unchanged, 1 refused (too large for image-show)" in output
    with mirror_app.app_context():
        stored = db.session.scalars(sa.text("SELECT id::text FROM images")).all()
    assert stored == [kept] and refused not in stored


def _caught_up(client, token, since=None):
    """The entries of the change feed from `since` on, and the cursor after them."""
    entries = []
    while True:
        page = client.get(
            "/v1/images/changes",
            query_string={"since": since} if since else {},
            headers={"X-Auth-Token": token},
        ).get_json()
        entries += [(entry["id"], entry.get("visible", True)) for entry in page["changes"]]
        since = page["cursor"]
        if len(page["changes"]) < 25:
            return entries, since


def test_an_image_glance_purged_leaves_the_feed_of_admins_and_its_owner(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    private = glance.image(visibility="private", owner="p1")
    glance.delete_image(private)
    follow_pass(mirror_app, glance_url)
    client = mirror_app.test_client()
    with mirror_app.app_context():
        tokens = {
            who: issue_token(db.session, project_id=project, roles=roles, ttl_seconds=0)
            for who, project, roles in (
                ("admin", "p9", ["admin"]),
                ("owner", "p1", ["member"]),
                ("other", "p2", ["member"]),
            )
        }
    before = {who: _caught_up(client, token)[1] for who, token in tokens.items()}
    glance.purge(private)
    with mirror_app.app_context():
        assert mirror.reconcile(db.session, source_of(glance_url), guard=GUARD) == (0, 1)
    seen = {who: _caught_up(client, token, before[who])[0] for who, token in tokens.items()}
    assert seen == {"admin": [(private, False)], "owner": [(private, False)], "other": []}
