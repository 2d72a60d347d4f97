"""Connection pools: the session's (CLI, writes, migrations) and the read path's.

No startup options and no session state: settings travel with each statement
or transaction (app/db/reads.py), so PgBouncer in transaction mode is safe.
"""

import psycopg2
import sqlalchemy as sa
from prometheus_client import Gauge

CONNECTIONS = Gauge(
    "image_catalogue_db_connections",
    "Open connections of the read path, by database (summed over workers).",
    ["target"],
    multiprocess_mode="livesum",
)

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


def pool_options(settings):
    # A sync gunicorn worker serves one request at a time: DB_POOL_SIZE
    # connections each, plus overflow for anything else the process runs.
    return {
        "pool_size": settings["DB_POOL_SIZE"],
        "max_overflow": settings["DB_MAX_OVERFLOW"],
        "connect_args": {"connect_timeout": settings["DB_CONNECT_TIMEOUT"]},
    }


# uuid columns read as their text, which is what the listing shows, instead of
# the UUID objects SQLAlchemy's dialect asks psycopg2 for.
_UUID_AS_TEXT = psycopg2.extensions.new_type((2950,), "UUID_AS_TEXT", lambda value, cursor: value)


def _uuids_as_text(dbapi_connection, connection_record):
    psycopg2.extensions.register_type(_UUID_AS_TEXT, dbapi_connection)


def create_read_engine(target, url, settings):
    """A pool of autocommit connections for reads from `target`, counted in CONNECTIONS."""
    engine = sa.create_engine(
        with_installed_driver(url), isolation_level="AUTOCOMMIT", **pool_options(settings)
    )
    gauge = CONNECTIONS.labels(target)
    sa.event.listen(engine.pool, "connect", _uuids_as_text)
    sa.event.listen(engine.pool, "connect", lambda *_: gauge.inc())
    sa.event.listen(engine.pool, "close", lambda *_: gauge.dec())
    return engine
