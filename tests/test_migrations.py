import os
import subprocess
import time
from contextlib import closing

import flask_migrate
import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from app.db import db
from app.db.migrating import MIGRATION_LOCK_KEY
from app.models import Image
from deploy.commands import catalogue_command
from deploy.processes import READY_DEADLINE_SECONDS
from helpers import ROOT, error_message, image_ids


def test_models_and_migrations_do_not_drift(app):
    result = app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output


def test_migrations_downgrade_and_upgrade_again(app):
    with app.app_context():
        flask_migrate.downgrade(revision="base")
        tables = sa.inspect(db.engine).get_table_names()
        assert "images" not in tables
        flask_migrate.upgrade()
        tables = sa.inspect(db.engine).get_table_names()
    assert {"images", "image_properties", "image_members", "api_tokens"} <= set(tables)


def _index_method_and_keys(connection, name):
    definition = connection.scalar(sa.text("SELECT pg_get_indexdef(to_regclass(:n))"), {"n": name})
    return definition.split(" USING ", 1)[1]


def test_sort_indexes_are_built_on_the_listings_sort_expressions(app):
    # PostgreSQL renders both: the migrated index, and the model's index built
    # on an empty copy of the table.
    sort_indexes = [index for index in Image.__table__.indexes if index.name.endswith("_sort")]
    assert len(sort_indexes) == 6
    with app.app_context():
        connection = db.session.connection()
        connection.exec_driver_sql("CREATE TEMP TABLE model_images (LIKE images)")
        for index in sort_indexes:
            ddl = str(CreateIndex(index).compile(dialect=postgresql.dialect()))
            model = f"model_{index.name}"
            connection.exec_driver_sql(
                ddl.replace(f"INDEX {index.name} ON images", f"INDEX {model} ON model_images")
            )
            assert _index_method_and_keys(connection, index.name) == _index_method_and_keys(
                connection, model
            )
        db.session.rollback()


# The revision before the newest one that changes the images table.
BEFORE_NEWEST = "b7c8d9e0f1a2"


def _catalogue(database_url, *arguments, **environment):
    return subprocess.Popen(
        catalogue_command(*arguments),
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(process):
    stdout, stderr = process.communicate(timeout=READY_DEADLINE_SECONDS)
    return process.returncode, stdout + stderr


def _invalid_indexes(app):
    with app.app_context():
        return db.session.scalar(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid"))


@pytest.fixture
def one_migration_behind(app):
    with app.app_context():
        flask_migrate.downgrade(revision=BEFORE_NEWEST)
    yield
    with app.app_context():
        flask_migrate.upgrade()


def test_a_blocked_migration_fails_fast_and_the_listing_keeps_answering(
    app, database_url, one_migration_behind, make_image, list_images
):
    image = make_image()
    with closing(psycopg2.connect(database_url)) as holder:
        # SHARE mode: readers go on, schema changes must wait.
        holder.cursor().execute("LOCK TABLE images IN SHARE MODE")
        upgrade = _catalogue(database_url, "db", "upgrade", MIGRATION_LOCK_TIMEOUT_MS="200")
        returncode, output = _finished(upgrade)
        # What serves meanwhile is the previous release (this code needs the
        # new columns): its reads of images are not queued behind the DDL.
        assert _image_ids_read(database_url) == [image]
    assert returncode == 1
    assert "Error: a migration gave up after waiting 200 ms" in output
    assert "Traceback" not in output
    assert _invalid_indexes(app) == 0
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT version_num FROM alembic_version")) == (
            BEFORE_NEWEST
        )
    assert _finished(_catalogue(database_url, "db", "upgrade"))[0] == 0
    assert image_ids(list_images()) == [image]


def _image_ids_read(database_url):
    with closing(psycopg2.connect(database_url)) as reader:
        cursor = reader.cursor()
        cursor.execute("SET statement_timeout = 5000; SELECT id::text FROM images")
        return [image_id for (image_id,) in cursor.fetchall()]


def test_two_hosts_upgrading_at_once_take_turns(app, database_url, one_migration_behind, tmp_path):
    logs = [tmp_path / f"host-{number}.log" for number in range(2)]
    with closing(psycopg2.connect(database_url)) as first_host:
        first_host.autocommit = True
        first_host.cursor().execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
        upgrades = [_catalogue_logging_to(log, database_url, "db", "upgrade") for log in logs]
        for log, upgrade in zip(logs, upgrades, strict=True):
            _wait_for_line(log, upgrade, "another db upgrade is running")
    returncodes = [upgrade.wait(timeout=READY_DEADLINE_SECONDS) for upgrade in upgrades]
    outputs = [log.read_text() for log in logs]
    assert returncodes == [0, 0], outputs
    assert len([output for output in outputs if "Running upgrade" in output]) == 1, outputs
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT version_num FROM alembic_version")) != (
            BEFORE_NEWEST
        )


def _catalogue_logging_to(log, database_url, *arguments):
    with log.open("w") as output:
        return subprocess.Popen(
            catalogue_command(*arguments),
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _wait_for_line(log, process, text):
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log.read_text()!r}"
        time.sleep(0.05)


def test_readyz_is_503_while_the_schema_is_behind_the_code(make_app, one_migration_behind):
    # A new app: its first /readyz probes now (a worker answers its latest probe).
    response = make_app().test_client().get("/readyz")
    message = error_message(response, 503)
    assert f"the schema is at {BEFORE_NEWEST}" in message and "db upgrade" in message


def test_readyz_stays_200_when_a_newer_release_migrated_the_schema(app, make_app):
    # Mid rolling upgrade: the new release ran db upgrade, this instance still runs the old code.
    with app.app_context():
        head = db.session.scalar(sa.text("SELECT version_num FROM alembic_version"))
        db.session.execute(sa.text("UPDATE alembic_version SET version_num = 'f0e1d2c3b4a5'"))
        db.session.commit()
    try:
        assert make_app().test_client().get("/readyz").status_code == 200
    finally:
        with app.app_context():
            db.session.execute(
                sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head}
            )
            db.session.commit()
