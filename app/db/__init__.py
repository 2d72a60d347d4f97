"""The database room: the Flask-SQLAlchemy extension and where DATABASE_URL leads.

DATABASE_URL is a PostgreSQL URL, or `embedded` for the local trial database
of `make run` and the tests (app/db/embedded.py); unset, the app refuses to
start rather than serve an empty catalogue from a database nobody asked for.
"""

import contextlib
import importlib.resources
from pathlib import Path

import flask_sqlalchemy
import psycopg2
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import Migrate
from sqlalchemy.exc import SQLAlchemyError

from app.config.options import EMBEDDED
from app.db.engines import pool_options, with_installed_driver
from app.db.reads import DatabaseUnavailable, ReadRouter

__all__ = [
    "DatabaseUnavailable",
    "db",
    "error_summary",
    "migrate",
    "read",
    "schema_problem",
    "status",
    "transaction",
    "wait_for_replicas",
    "with_installed_driver",
]


def _migrations_dir():
    """Alembic's scripts: the package app.migrations where installed (setup.cfg maps migrations/
    to it; an editable install too), else migrations/ beside app/, for a checkout run in place
    with only the requirements installed (`flask --app wsgi db upgrade`), which has no such package.
    """
    try:
        return importlib.resources.files("app.migrations")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "migrations"


MIGRATIONS_DIR = _migrations_dir()


class SQLAlchemy(flask_sqlalchemy.SQLAlchemy):
    def _teardown_session(self, exc):
        """Remove the request's session, whatever happened to its connection.

        If the database went away after the response was built, the rollback
        in session.remove() fails; letting that escape would turn the finished
        response into gunicorn's bare 500. The pool has already discarded the
        broken connection.
        """
        try:
            super()._teardown_session(exc)
        except SQLAlchemyError as error:
            current_app.logger.warning("could not end the session cleanly: %s", error)
            self.session.registry.clear()


db = SQLAlchemy()
migrate = Migrate()


def init_app(app):
    """Bind the extensions to the database DATABASE_URL names (checked by create_app)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url == EMBEDDED:
        from app.db import embedded

        url = embedded.start(app.config["EMBEDDED_PGDATA"]).get_uri()
    app.config["SQLALCHEMY_DATABASE_URI"] = with_installed_driver(url)
    # The session (CLI, writes, migrations) pings before use: it is not the
    # hot path, and a long-idle CLI connection is often gone.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**pool_options(app.config), "pool_pre_ping": True}
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    app.extensions["schema_heads"] = frozenset(scripts.get_heads())
    app.extensions["schema_revisions"] = frozenset(
        script.revision for script in scripts.walk_revisions()
    )
    app.extensions["reads"] = ReadRouter(app.config)


@contextlib.contextmanager
def transaction(session):
    """Commit what the block wrote, or roll it all back if the block fails.

    The one rule for writes: a function that writes the catalogue (a load,
    a mirror batch, a token change) runs its work in `with transaction(session):`
    and so owns its transaction; the helpers it calls (staging, upsert) run in
    it and never commit.
    """
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    session.commit()


def error_summary(error):
    """The first line of a database error's message (the driver's, when it has one)."""
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def read(work, affinity=""):
    """Run `work(reader)` on the database reads go to (app/db/reads.py); return its result.

    :raises DatabaseUnavailable: no database could serve it.
    """
    return current_app.extensions["reads"].read(work, affinity)


def wait_for_replicas():
    """Wait (briefly) until the replicas have what was just written: reads anywhere see it."""
    current_app.extensions["reads"].wait_for_replicas()


def status():
    """Each database reads can go to: answering or not, and its lag (for /readyz)."""
    return current_app.extensions["reads"].status()


def schema_problem(reader):
    """Return why the database's schema cannot serve this code, or None.

    A schema behind the code (or never migrated) cannot. A schema at a
    revision this code does not know was migrated by a newer release: by
    the expand/contract rule (docs/operations.md) the old code still runs on
    it, which a rolling upgrade relies on.
    """
    try:
        applied = {version for (version,) in reader.rows("SELECT version_num FROM alembic_version")}
    except psycopg2.errors.UndefinedTable:
        return "the schema was never migrated (run: image-catalogue db upgrade)"
    expected = current_app.extensions["schema_heads"]
    newer = applied and not applied & current_app.extensions["schema_revisions"]
    if applied != expected and not newer:
        return (
            f"the schema is at {', '.join(sorted(applied)) or 'no revision'}, this code needs "
            f"{', '.join(sorted(expected))} (run: image-catalogue db upgrade)"
        )
    return None
