"""Glance databases for tests and the benchmark, from the schema dumps Glance's migrations made.

The dumps (deploy/glance-schemas, see its README) hold Glance's real DDL:
Mitaka (before Ocata's visibility column), Queens, and 33.0.0 on PostgreSQL
and MariaDB.
"""

from pathlib import Path

import sqlalchemy as sa

from app.db import with_installed_driver

DUMPS = Path(__file__).resolve().parent / "glance-schemas"


def load_schema(url, dump):
    """Run a schema dump (postgresql-*.sql or mysql-*.sql) into the empty database at `url`."""
    engine = sa.create_engine(with_installed_driver(url), poolclass=sa.pool.NullPool)
    text = (DUMPS / dump).read_text()
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(text)
        else:
            cursor = connection.connection.cursor()
            for statement in _mysql_statements(text):
                cursor.execute(statement)
        connection.commit()
    engine.dispose()


def _mysql_statements(text):
    statement = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        statement.append(line)
        if line.rstrip().endswith(";"):
            yield "\n".join(statement)
            statement = []
