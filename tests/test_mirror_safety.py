"""The Glance mirror cannot empty the catalogue, take another source's images, hang, or leak.

Each test here failed before the mirror knew its sources, guarded its
deletions, bounded its waits and read Glance's schema at every pass.
"""

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.db import db, read
from app.freshness import catalogue_freshness
from app.loading.sources import SourceLock
from deploy.glance_schemas import load_schema
from deploy.processes import READY_DEADLINE_SECONDS
from glance_database import GlanceDatabase
from helpers import fingerprint, import_line, metric_total
from mirroring import (
    Follower,
    everything,
    load_reference,
    populate,
    sync,
    sync_command,
    with_reader,
)
from tcp import SilentThenForwarding


def _sources(app):
    """{source: (live images, deleted images)} of the catalogue."""
    with app.app_context():
        rows = db.session.execute(
            sa.text(
                "SELECT coalesce(source, '-'), count(*) FILTER (WHERE NOT deleted),"
                " count(*) FILTER (WHERE deleted) FROM images GROUP BY 1"
            )
        ).all()
    return {source: (live, deleted) for source, live, deleted in rows}


def test_a_second_source_with_prune_leaves_every_image_of_the_first_listed(
    mirror_app, glance_url, new_database
):
    first = GlanceDatabase(glance_url)
    populate(first)
    sync(mirror_app, glance_url, "--source", "cloud-a")
    before = _sources(mirror_app)
    other_url = new_database()
    load_schema(other_url, "postgresql-33.0.0.sql")
    GlanceDatabase(other_url).image(name="only-in-cloud-b")
    output = sync(mirror_app, other_url, "--source", "cloud-b", "--prune")
    assert "purged in Glance: 0 marked deleted, 0 removed" in output
    assert _sources(mirror_app) == {**before, "cloud-b": (1, 0)}


def _with_most_purged(mirror_app, glance_url):
    """Mirror 14 more images, then purge 12 of them in Glance: past the guard's floor of 10.

    Returns how many live images the mirror had.
    """
    glance = GlanceDatabase(glance_url)
    populate(glance)
    ids = [glance.image(name=f"bulk-{number}") for number in range(14)]
    sync(mirror_app, glance_url)
    for image_id in ids[:12]:
        glance.purge(image_id)
    return _sources(mirror_app)["glance"][0]


def test_a_prune_past_the_guard_changes_nothing_and_names_the_count(mirror_app, glance_url):
    live = _with_most_purged(mirror_app, glance_url)
    before = fingerprint(mirror_app)
    refused = sync_command(mirror_app, glance_url, "--prune")
    assert refused.exit_code == 1
    assert f"Glance no longer has 12 of its {live} images" in refused.output
    assert "--prune --allow-deletions 12" in refused.output
    assert fingerprint(mirror_app) == before
    allowed = sync(mirror_app, glance_url, "--prune", "--allow-deletions", "12")
    assert "purged in Glance: 12 marked deleted, 0 removed" in allowed


def test_a_follower_records_a_refused_reconcile_instead_of_applying_it(mirror_app, glance_url):
    live = _with_most_purged(mirror_app, glance_url)
    before = fingerprint(mirror_app)
    with Follower(mirror_app, with_reader(glance_url), reconcile_every=1) as follower:
        follower.log.wait_for(f"Glance no longer has 12 of its {live} images")
    assert follower.error is None
    assert fingerprint(mirror_app) == before
    client = mirror_app.test_client()
    metrics = client.get("/metrics").get_data(as_text=True)
    assert metric_total(metrics, "image_catalogue_mirror_refused_deletions", source="glance") == 12
    assert metric_total(metrics, "image_catalogue_mirror_failing", source="glance") == 1
    (state,) = client.get("/readyz").get_json()["glance_mirrors"]
    assert (state["state"], state["refused_deletions"]) == ("failing", 12)


def test_an_image_of_another_source_is_refused_naming_both_until_that_source_is_forgotten(
    mirror_app, glance_url
):
    runner = mirror_app.test_cli_runner()
    image_id = "4a1b5d27-6bf0-4f3e-9e06-5f1a6a4c7d11"
    imported = runner.invoke(args=["images", "import", "-"], input=import_line(id=image_id) + "\n")
    assert imported.exit_code == 0, imported.output
    GlanceDatabase(glance_url).image(id=image_id, name="the same image, mirrored")
    before = fingerprint(mirror_app)
    refused = sync_command(mirror_app, glance_url)
    assert refused.exit_code == 1
    assert f"image {image_id} belongs to source 'import', not 'glance'" in refused.output
    assert fingerprint(mirror_app) == before
    forgot = runner.invoke(args=["images", "forget-source", "import"])
    assert "forgot source 'import': 1 images released, 0 marked deleted" in forgot.output
    assert "1 inserted" not in sync(mirror_app, glance_url)  # claimed: an update
    assert _sources(mirror_app) == {"glance": (1, 0)}


def test_forget_source_can_delete_its_images_and_waits_for_no_follower(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    sync(mirror_app, glance_url)
    live, deleted = _sources(mirror_app)["glance"]
    runner = mirror_app.test_cli_runner()
    with SourceLock(mirror_app.config["SQLALCHEMY_DATABASE_URI"], "glance"):
        busy = runner.invoke(args=["images", "forget-source", "glance", "--delete-images"])
    assert busy.exit_code == 1 and "writes for source 'glance' now" in busy.output
    done = runner.invoke(args=["images", "forget-source", "glance", "--delete-images"])
    assert f"0 images released, {live} marked deleted" in done.output
    assert _sources(mirror_app) == {"glance": (0, live + deleted)}
    with mirror_app.app_context():
        assert read(catalogue_freshness).mirrors == []


def test_a_dry_run_says_what_would_change_and_changes_nothing(mirror_app, glance_url):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    sync(mirror_app, glance_url)
    glance.image(name="new")
    glance.update_image(next(iter(glance.v1)), name="renamed")
    purged = glance.image(name="purged-soon")
    sync(mirror_app, glance_url)
    glance.purge(purged)
    before = fingerprint(mirror_app)
    output = sync(mirror_app, glance_url, "--dry-run", "--prune")
    assert f"would be: 0 inserted, 0 updated, {len(glance.v1)} unchanged" in output
    assert "purged in Glance, would be: 1 marked deleted, 0 removed" in output
    assert fingerprint(mirror_app) == before


def _silent_source(listener, driver):
    return f"{driver}://catalogue_mirror:secret@127.0.0.1:{listener.port}/glance"


@pytest.mark.parametrize("driver", ["postgresql", "mysql+pymysql"])
def test_sync_glance_gives_up_on_a_source_that_never_answers(make_app, driver):
    # Before timeouts, the command waited for ever: a thread lets the test end.
    app = make_app(GLANCE_CONNECT_TIMEOUT=2, GLANCE_READ_TIMEOUT=3)
    outcome = {}
    with SilentThenForwarding() as listener:
        url = _silent_source(listener, driver)

        def run():
            began = time.monotonic()
            outcome["result"] = app.test_cli_runner().invoke(args=["images", "sync-glance", url])
            outcome["seconds"] = time.monotonic() - began

        command = threading.Thread(target=run, daemon=True)
        command.start()
        command.join(timeout=READY_DEADLINE_SECONDS)
    assert not command.is_alive(), "sync-glance still waits on a source that never answers"
    result = outcome["result"]
    assert result.exit_code == 1
    assert "Error: a database could not be reached" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert outcome["seconds"] < 2 * (2 + 3)


def _unix_socket(database_url):
    """Where the test PostgreSQL listens (its URL names the socket's folder)."""
    folder = Path(sa.make_url(database_url).query["host"])
    (socket_path,) = folder.glob(".s.PGSQL.*[0-9]")
    return str(socket_path)


def test_the_follower_waits_on_a_silent_source_and_recovers_once_it_answers(
    mirror_app, glance_url, database_url
):
    glance = GlanceDatabase(glance_url)
    populate(glance)
    with_reader(glance_url)
    database = sa.make_url(glance_url).database
    with SilentThenForwarding() as listener:
        url = f"postgresql://catalogue_mirror@127.0.0.1:{listener.port}/{database}"
        with Follower(mirror_app, url) as follower:
            follower.log.wait_for("pass failed, retrying")
            follower.log.wait_for("pass failed, retrying in 2 s")  # the lag grows
            with mirror_app.app_context():
                (state,) = read(catalogue_freshness).mirrors
            assert state["last_success_at"] is None and state["last_error_at"]
            listener.forward_to(_unix_socket(database_url))
            follower.log.wait_for("full sync:")
    assert follower.error is None
    assert _sources(mirror_app)["glance"][0] == sum(
        not image["deleted"] for image in glance.v1.values()
    )


def test_a_follower_that_cannot_pass_for_its_bound_exits(mirror_app):
    with SilentThenForwarding() as listener:
        follower = Follower(mirror_app, _silent_source(listener, "postgresql"), give_up=1)
        with follower:
            follower.join(timeout=READY_DEADLINE_SECONDS)
    assert "no pass of source 'glance' succeeded for 1 s" in str(follower.error)


def test_readyz_of_a_failing_mirror_tells_no_user_host_or_database(mirror_app):
    url = "postgresql://secret_user:secret_password@127.0.0.1:9/secret_database"
    with Follower(mirror_app, url) as follower:
        follower.log.wait_for("pass failed, retrying")
    answer = mirror_app.test_client().get("/readyz")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and '"state":"failing"' in text
    for secret in ("secret_user", "secret_password", "127.0.0.1", "secret_database"):
        assert secret not in text


def _hidden(glance, image_id):
    with glance.engine.begin() as connection:
        connection.execute(
            glance.images.update()
            .where(glance.images.c.id == image_id)
            .values(os_hidden=True, updated_at=glance.tick())
        )
    glance.v1[image_id].update(hidden=True, updated_at=glance.clock.isoformat())


def test_the_follower_keeps_up_with_glance_upgrades_under_it(app, mirror_app, new_database):
    # Mitaka's schema, Ocata's visibility migration (expand, migrate, contract),
    # then Rocky's os_hidden: no person restarts the follower.
    url = new_database()
    load_schema(url, "postgresql-mitaka.sql")
    glance = GlanceDatabase(url)
    marker = populate(glance)
    with Follower(mirror_app, with_reader(url)) as follower:
        follower.log.wait_for("full sync:")
        _ocata_expand(glance)
        # Old code goes on writing is_public only: visibility stays NULL.
        glance.image(visibility="private", name="written-between-expand-and-migrate")
        _ocata_migrate_and_contract(glance)
        glance = _reopened(glance, url)
        glance.image(visibility="community", name="written-after-contract")
        _rocky_expand(glance)
        glance = _reopened(glance, url)
        _hidden(glance, marker)
        _wait_for_the_mirror(app, mirror_app, glance, follower)
    assert follower.error is None
    # The first pass, and one after the schema changed.
    assert sum("full sync:" in line for line in follower.log.lines) >= 2


def _ocata_expand(glance):
    with glance.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE images ADD COLUMN visibility varchar(9)")
        connection.exec_driver_sql("ALTER TABLE images ALTER COLUMN is_public DROP NOT NULL")


def _ocata_migrate_and_contract(glance):
    # Glance's data migration: updated_at stays as it was.
    with glance.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE images SET visibility = CASE WHEN is_public THEN 'public'"
            " WHEN id IN (SELECT image_id FROM image_members WHERE NOT deleted) THEN 'shared'"
            " ELSE 'private' END"
        )
        connection.exec_driver_sql("ALTER TABLE images DROP COLUMN is_public")
        connection.exec_driver_sql("ALTER TABLE images ALTER COLUMN visibility SET NOT NULL")


def _rocky_expand(glance):
    with glance.engine.begin() as connection:
        connection.exec_driver_sql(
            "ALTER TABLE images ADD COLUMN os_hidden boolean NOT NULL DEFAULT false"
        )


def _reopened(glance, url):
    """The same oracle, writing through the schema as it is now."""
    again = GlanceDatabase(url)
    again.v1, again.clock = glance.v1, glance.clock
    again._counted_members = glance._counted_members
    glance.engine.dispose()
    return again


def _wait_for_the_mirror(app, mirror_app, glance, follower):
    """Until the mirror answers what a catalogue imported from the oracle answers."""
    load_reference(app, glance)
    expected = everything(app)
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while everything(mirror_app) != expected:
        assert follower.is_alive() and time.monotonic() < deadline, follower.log.lines[-5:]
        time.sleep(0.2)


def test_hidden_images_are_listed_only_with_changes_since_or_when_configured(make_app, run):
    run("images", "import", "-", input=import_line(hidden=True) + "\n")
    since = "changes-since=2000-01-01"
    for config, default, with_since in (({}, 0, 1), ({"LIST_HIDDEN_IMAGES": True}, 1, 1)):
        client = make_app(**config).test_client()
        headers = {"X-Auth-Token": run("tokens", "issue", "--project", "p1").output.strip()}
        listed = client.get("/v1.1/images/detail", headers=headers).get_json()["images"]
        updated = client.get(f"/v1.1/images/detail?{since}", headers=headers).get_json()["images"]
        assert (len(listed), len(updated)) == (default, with_since), config
