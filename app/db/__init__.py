"""The database room: the Flask-SQLAlchemy extension and where DATABASE_URL leads.

DATABASE_URL is a PostgreSQL URL, or `embedded` for the local trial database
of `make run` and the tests (app/db/embedded.py); unset, the app refuses to
start rather than serve an empty catalogue from a database nobody asked for.
"""

from pathlib import Path

import flask_sqlalchemy
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import current_app
from flask_migrate import Migrate
from sqlalchemy.exc import SQLAlchemyError

from app.config import EMBEDDED

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"


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
    statement_timeout = app.config["DB_STATEMENT_TIMEOUT_MS"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "pool_size": app.config["DB_POOL_SIZE"],
        "max_overflow": app.config["DB_MAX_OVERFLOW"],
        "pool_pre_ping": True,
        "connect_args": {
            "connect_timeout": app.config["DB_CONNECT_TIMEOUT"],
            "options": f"-c timezone=UTC -c statement_timeout={statement_timeout}",
        },
    }
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    app.extensions["schema_heads"] = frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
}


def with_installed_driver(url):
    """Name the drivers this service installs (psycopg2, PyMySQL) when a URL names none.

    SQLAlchemy 2.1 would pick psycopg 3 for postgresql:// and mysqlclient for mysql://.
    """
    scheme, separator, rest = str(url).partition("://")
    return f"{DRIVERS.get(scheme, scheme)}{separator}{rest}"


def schema_problem(session):
    """Return why the database's schema is not the one this code expects, or None."""
    try:
        with session.begin_nested():
            applied = set(session.scalars(sa.text("SELECT version_num FROM alembic_version")))
    except sa.exc.ProgrammingError:
        return "the schema was never migrated (run: flask --app wsgi db upgrade)"
    expected = current_app.extensions["schema_heads"]
    if applied != expected:
        return (
            f"the schema is at {', '.join(sorted(applied)) or 'no revision'}, this code needs "
            f"{', '.join(sorted(expected))} (run: flask --app wsgi db upgrade)"
        )
    return None
