"""Sources: who loaded each image, one writer per source at a time, and forgetting a source.

Every image records its source (images.source): a Glance mirror's name or a
named import. A session-level PostgreSQL advisory lock per source name lets
one process at a time write for it: a second follower waits as a standby and
takes over when the first one's session ends (its process died, or its host
vanished: the server notices within its TCP keepalive time); a one-off
command refuses to run beside a follower. The lock is session state: the
commands that take it need a direct connection to PostgreSQL (or PgBouncer's
session pool), like `db upgrade`.
"""

import contextlib
import re
import zlib

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from app.db import transaction
from app.loading.changes import MARK_DELETED, NOTE_DEPARTURES, take_change_number
from app.loading.upsert import cursor_of
from app.models import CatalogueLoad, GlanceMirror

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# pg_advisory_lock(classid, objid): "imgc" in ASCII, then the name's CRC-32.
LOCK_CLASS = 0x696D6763
# The same per transaction, for applying a source's images: "imga".
APPLY_LOCK_CLASS = 0x696D6761
# How soon PostgreSQL drops the lock of a follower whose host vanished.
KEEPALIVE_SETTINGS = (
    "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"
)


class SourceBusy(Exception):
    """Another process writes for this source now; the message says which source."""


def name_problem(name):
    """Why `name` cannot name a source, or None."""
    if NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not a source name: 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


class SourceLock:
    """The advisory lock of source `name`, on a connection of its own to the catalogue at `url`."""

    def __init__(self, url, name):
        self.engine = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.name = name
        self.objid = _objid(name)
        self.connection = None

    def hold(self):
        """True if this process holds the lock now (taking it if it is free).

        A lock whose connection was lost (the catalogue restarted) is taken
        again, unless another process took it meanwhile.
        """
        if self.connection is not None:
            try:
                self.connection.exec_driver_sql("SELECT 1")
                return True
            except sa.exc.DBAPIError:
                self.release()
        connection = self.engine.connect()
        try:
            connection.exec_driver_sql(KEEPALIVE_SETTINGS)
            taken = connection.exec_driver_sql(
                f"SELECT pg_try_advisory_lock({LOCK_CLASS}, {self.objid})"
            ).scalar()
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self.connection = connection
        return True

    def release(self):
        if self.connection is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self.connection.close()
            self.connection = None

    def __enter__(self):
        """Hold the lock for a one-off command.

        :raises SourceBusy: another process holds it.
        """
        if not self.hold():
            raise SourceBusy(
                f"another process (a follower, or another sync) writes for source "
                f"{self.name!r} now; stop it first"
            )
        return self

    def __exit__(self, *exc_info):
        self.release()
        self.engine.dispose()


def hold_apply_lock(session, name):
    """Until this transaction ends, be the only one applying source `name`'s images.

    The follower holds it for each batch, a write through Glance for its
    result (app/loading/mirror.py), whichever processes and hosts they run in.
    """
    cursor_of(session).execute(
        "SELECT pg_advisory_xact_lock(%s, %s)", (APPLY_LOCK_CLASS, _objid(name))
    )


def _objid(name):
    return zlib.crc32(name.encode()) - (1 << 31)


def forget_source(session, name, *, delete_images=False):
    """Forget source `name`: its mirror state and its last load. Return (released, deleted).

    Its images are released (no source: the next load that writes one claims
    it), or with `delete_images` marked deleted, as Glance's delete does, so
    changes-since pollers learn of it.
    """
    with transaction(session):
        cursor = cursor_of(session)
        # First, as every writer takes it (upsert.py): then no two writers wait on each other.
        numbered = {"source": name, "change": take_change_number(cursor)}
        session.execute(sa.delete(GlanceMirror).where(GlanceMirror.source == name))
        session.execute(sa.delete(CatalogueLoad).where(CatalogueLoad.source == name))
        cursor.execute("SELECT EXISTS (SELECT 1 FROM images WHERE source = %s)", (name,))
        if not cursor.fetchone()[0]:
            return 0, 0
        deleted = 0
        if delete_images:
            cursor.execute(MARK_DELETED.format(chosen="source = %(source)s"), numbered)
            (deleted,) = cursor.fetchone()
            cursor.execute(NOTE_DEPARTURES, numbered)
        cursor.execute(
            "UPDATE images SET source = NULL, change = %(change)s"
            " WHERE source = %(source)s AND NOT deleted",
            numbered,
        )
        released = cursor.rowcount
    return released, deleted
