"""The read path: which database a read runs on, and how it survives one that fails.

Reads (listings, token lookups, readiness, freshness) run on pooled psycopg2
connections in autocommit, each statement sent with its settings in the same
round trip (`SET LOCAL statement_timeout = ...; <statement>`: one implicit
transaction). Nothing is left in the session, so PgBouncer's transaction
pooling is safe, and there is no ping before use: a pooled connection found
dead is dropped and the read retried once on a fresh one.

With DATABASE_REPLICA_URLS, reads go to a streaming replica. A caller (the
token's digest) keeps to the same replica while it is usable (rendezvous
hashing), so consecutive pages come from one copy of the catalogue. Each read
on a replica first checks, in the same round trip, that the replica is at
most REPLICA_MAX_LAG_SECONDS behind (docs/scaling.md): a lagging replica
refuses the read itself, so every worker and node stops using it at the same
moment, and the read moves to the caller's next replica, else the primary.
A replica that refused, failed or lagged is left out of this worker's
rotation for REPLICA_RETRY_SECONDS.
"""

import hashlib
import math
import re
import time
from typing import NamedTuple

import psycopg2
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql

from app.db.engines import create_read_engine

READS = Counter("image_catalogue_db_reads_total", "Reads served, by database.", ["target"])
FALLBACKS = Counter(
    "image_catalogue_db_read_fallbacks_total",
    "Reads moved away from a database, by database and reason (down, lagging).",
    ["target", "reason"],
)
# SQLSTATE raised by image_catalogue_assert_fresh() (migrations) on a lagging replica.
LAGGING = "ICLAG"
QUERY_CANCELED = "57014"
_DIALECT = postgresql.psycopg2.dialect()
_EXPANDING = re.compile(r"\(__\[POSTCOMPILE_(\w+)\]\)")


class DatabaseUnavailable(Exception):
    """No database could serve the read (down, unreachable, too slow, or lagging)."""


class Compiled(NamedTuple):
    """SQL text with %(name)s placeholders, and the values of its literals."""

    sql: str
    literals: dict

    def with_values(self, values):
        """(SQL, parameters) for Reader.rows and Reader.first."""
        return self.sql, {**self.literals, **values}


def compiled(statement):
    """Compile a SQLAlchemy Core statement once, to run it many times through a Reader.

    An expanding IN (bindparam(..., expanding=True)) takes a tuple, which
    psycopg2 writes as a parenthesised list: a single value then becomes a
    plain equality for the planner, where `= ANY(array)` would not.
    """
    result = statement.compile(dialect=_DIALECT)
    literals = {name: value for name, value in result.params.items() if value is not None}
    return Compiled(_EXPANDING.sub(r"%(\1)s", str(result)), literals)


class Reader:
    """What a read function gets: statements on one database, with the read's settings."""

    def __init__(self, cursor, prefix):
        self.cursor, self.prefix = cursor, prefix

    def rows(self, sql, parameters=None):
        self.cursor.execute(self.prefix + sql, parameters)
        return self.cursor.fetchall()

    def first(self, sql, parameters=None):
        rows = self.rows(sql, parameters)
        return rows[0] if rows else None


class Target:
    """One database reads can go to; `check` is SQL run before each read (replicas: the lag)."""

    def __init__(self, name, url, settings, check=""):
        self.name, self.engine = name, create_read_engine(name, url, settings)
        # UTC: timestamps come back needing no conversion. No JIT: compiling
        # costs more than any listing query runs.
        self.setting = (
            f"SET LOCAL statement_timeout = {int(settings['DB_STATEMENT_TIMEOUT_MS'])};"
            "SET LOCAL timezone = 'UTC'; SET LOCAL jit = off;"
        )
        self.check = check
        self.prefix = self.setting + check
        self.out_until = 0.0
        READS.labels(name)  # the series exists from the start, at 0


class ReadRouter:
    """The databases reads can go to: DATABASE_URL's and DATABASE_REPLICA_URLS'."""

    def __init__(self, settings):
        self.max_lag = float(settings["REPLICA_MAX_LAG_SECONDS"])
        lag_check = f"SELECT image_catalogue_assert_fresh({self.max_lag});"
        self.primary = Target("primary", settings["SQLALCHEMY_DATABASE_URI"], settings)
        self.replicas = [
            Target(f"replica-{number}", url, settings, check=lag_check)
            for number, url in enumerate(settings["DATABASE_REPLICA_URLS"], start=1)
        ]
        self.retry_seconds = settings["REPLICA_RETRY_SECONDS"]

    def read(self, work, affinity="", settings=True):
        """Return `work(reader)` run on the caller's replica, the next usable one, or the primary.

        Without `settings`, a replica's lag check still goes first, but not the
        read's statement timeout and time zone: for a single-row read that needs neither.

        :raises DatabaseUnavailable: no database could serve it.
        """
        failure = None
        for target in self.candidates(affinity):
            try:
                result = _run(target, work, prefix=None if settings else target.check)
            except _TargetFailed as failed:
                failure = failed
                self._leave_out(target)
                FALLBACKS.labels(target.name, failed.reason).inc()
                continue
            READS.labels(target.name).inc()
            return result
        raise DatabaseUnavailable(str(failure.__cause__ if failure else "no database"))

    def candidates(self, affinity):
        """The replicas in rotation, in this caller's order of preference, then the primary."""
        now = time.monotonic()
        by_name = {replica.name: replica for replica in self.replicas if replica.out_until <= now}
        return [*(by_name[name] for name in replica_order(affinity, by_name)), self.primary]

    def status(self):
        """Each database: answering or not, and how far behind, for /readyz.

        A replica left out of the rotation is reported unavailable without
        being asked again before its retry time (a host that does not answer
        would hold the probe for the whole connect timeout each time); one
        that fails now is left out, as after a failed read.
        """
        return {target.name: self._probe(target) for target in [self.primary, *self.replicas]}

    def _probe(self, target):
        now = time.monotonic()
        if target.out_until > now:
            return {"status": "unavailable", "error": "left out after a failure"}
        if target.out_until:
            # Left out before: reads keep away while this probe waits on it.
            target.out_until = now + self.retry_seconds
        try:
            lag = _run(target, _lag, prefix=target.setting)
        except _TargetFailed as failed:
            self._leave_out(target)
            return {"status": "unavailable", "error": str(failed.__cause__)}
        if lag > self.max_lag:
            # Behind the bound, or unknown (a standby not streaming): reads refuse it too.
            return {
                "status": "lagging",
                "lag_seconds": round(lag, 3) if math.isfinite(lag) else None,
            }
        target.out_until = 0.0
        return {"status": "ok", "lag_seconds": round(lag, 3)}

    def wait_for_replicas(self):
        """Wait until every replica in rotation has replayed what the primary has written now.

        At most REPLICA_MAX_LAG_SECONDS: a replica still behind after that many
        seconds fails its own lag check (its last replayed commit is older
        than the bound), so no read is answered from it meanwhile.
        """
        replicas = [replica for replica in self.replicas if replica.out_until <= time.monotonic()]
        if not replicas:
            return
        try:
            (written,) = _run(self.primary, lambda reader: reader.first(_WRITTEN), prefix="")
        except _TargetFailed:
            return  # the write is done; the replicas' own lag checks still bound what they show
        deadline = time.monotonic() + self.max_lag
        for replica in replicas:
            while time.monotonic() < deadline and not self._replayed(replica, written):
                time.sleep(0.01)

    def _replayed(self, replica, lsn):
        try:
            return _run(replica, lambda reader: reader.first(_REPLAYED, (lsn,))[0], prefix="")
        except _TargetFailed:
            return True  # down: it answers nothing until it is back and checked

    def _leave_out(self, target):
        """A replica that failed leaves the rotation for retry_seconds (the primary never does)."""
        if target is not self.primary:
            target.out_until = time.monotonic() + self.retry_seconds


_WRITTEN = "SELECT pg_current_wal_lsn()::text"
# A "replica" that is not a standby (promoted, or the primary's own address) has it all.
_REPLAYED = (
    "SELECT NOT pg_is_in_recovery() OR coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)"
)


class _TargetFailed(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def replica_order(affinity, names):
    """`names` in the order a caller (`affinity`) prefers them: rendezvous hashing.

    Every worker of every node computes the same order, and a replica that
    leaves or rejoins moves only the callers that preferred it.
    """
    return sorted(
        names,
        key=lambda name: hashlib.blake2b(f"{affinity}/{name}".encode(), digest_size=8).digest(),
        reverse=True,
    )


def _lag(reader):
    return float(reader.first("SELECT image_catalogue_replica_lag()")[0])


def _run(target, work, prefix=None):
    """Run `work` on a pooled connection of `target`; once more on a new one if it was dead."""
    for attempt in (1, 2):
        try:
            connection = target.engine.raw_connection()
        except psycopg2.Error as error:
            raise _TargetFailed("down") from error
        try:
            with connection.cursor() as cursor:
                result = work(Reader(cursor, target.prefix if prefix is None else prefix))
        except psycopg2.Error as error:
            connection.invalidate()
            if error.pgcode == LAGGING:
                raise _TargetFailed("lagging") from error
            if error.pgcode == QUERY_CANCELED:
                raise DatabaseUnavailable("the statement timed out") from error
            if not _connection_lost(error):
                raise
            if attempt == 2:
                raise _TargetFailed("down") from error
            continue
        except BaseException:
            # The work's own answer (a bad marker, a 404): the connection is fine.
            connection.close()
            raise
        connection.close()
        return result
    raise AssertionError("unreachable")


def _connection_lost(error):
    # A dead pooled connection (server restarted, PgBouncer or network gone),
    # or the server shutting down: not the statement's fault.
    return isinstance(error, psycopg2.InterfaceError | psycopg2.OperationalError)
