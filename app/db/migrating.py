"""Schema changes that leave the listing answering while they run (docs/operations.md).

`db upgrade` takes an advisory lock, so hosts that run it at once take turns
(the later ones find nothing left to do), and sets `lock_timeout`, so DDL that
would queue behind a long reader fails fast instead of queueing every request
behind itself. Indexes are built with CREATE INDEX CONCURRENTLY, outside the
migration's transaction; an invalid index left by a failed build is dropped
and built again.

The lock and the settings are session state: run `db upgrade` against
PostgreSQL directly (or a session-pooling PgBouncer), not through transaction
pooling.
"""

import time

import sqlalchemy as sa
from alembic import op

# pg_advisory_lock key: "imgcat" in ASCII, so other tools' locks do not collide.
MIGRATION_LOCK_KEY = 0x696D67636174


def take_migration_lock(connection, log, poll_seconds=0.5):
    """Wait for any other `db upgrade` on this database to finish, then hold the lock.

    Polled between transactions: a session blocked in pg_advisory_lock() holds
    a snapshot, which the other host's CREATE INDEX CONCURRENTLY would wait
    for, a deadlock.
    """
    waiting = False
    while not connection.scalar(sa.text(f"SELECT pg_try_advisory_lock({MIGRATION_LOCK_KEY})")):
        connection.rollback()
        if not waiting:
            log("another db upgrade is running on this database; waiting for it to finish")
            waiting = True
        time.sleep(poll_seconds)


def create_index_concurrently(name, table, expressions, where=None):
    """Build an index without blocking reads or writes of `table`."""
    condition = f" WHERE {where}" if where else ""
    with op.get_context().autocommit_block():
        _drop_if_invalid(name)
        op.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table}"
            f" ({', '.join(expressions)}){condition}"
        )


def drop_index_concurrently(name):
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def _drop_if_invalid(name):
    invalid = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
            " WHERE pg_class.relname = :name AND NOT pg_index.indisvalid"
        ),
        {"name": name},
    )
    if invalid:
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
