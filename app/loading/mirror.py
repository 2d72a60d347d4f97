"""`images sync-glance`: mirror a Glance database into the catalogue, once or continuously.

A full sync upserts every Glance image, one transaction per batch (a batch is
mirrored completely or not at all), through app/loading/upsert.py, so a
second run changes nothing. The mirror writes as its source name (images.
source): it never takes over another source's image, and its reconcile
touches only its own. Following, each pass applies what changed since the
watermark kept in the catalogue (glance_mirrors, by source name), so a
restarted follower resumes where it stopped:

- images whose updated_at or created_at moved, and images whose memberships
  changed (a membership change does not touch the image's updated_at);
- re-read over an overlap window before the watermark, because Glance's
  transactions commit out of timestamp order (upserts are idempotent);
- a full pass instead when Glance's schema changed since the last pass (an
  upgrade's data migrations do not move updated_at);
- and now and then a reconcile of every id, for images `glance-manage db
  purge` removed without a trace: still listed here, they are marked deleted
  (so changes-since pollers learn of it); already deleted, they are removed.
  A reconcile that would mark more than a bounded share of the source's
  images deleted (a wrong or emptied source) refuses and changes nothing.

One follower per source works at a time (app/loading/sources.py); others
wait as standbys. A pass that fails (a database unreachable or too slow, the
schema changing under it) writes nothing more and is retried with backoff,
the schema read again; a follower that has not passed for `give_up_seconds`
exits, so that its supervisor restarts it.
"""

import contextlib
import datetime as dt
import tempfile
import time
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import insert

from app.db import error_summary, transaction
from app.loading.changes import MARK_DELETED, NOTE_DEPARTURES, REMOVE, take_change_number
from app.loading.glance_source import GlanceSchemaError, glance_time
from app.loading.sources import hold_apply_lock
from app.loading.upsert import (
    LoadSummary,
    SourceConflict,
    Staging,
    analyze,
    copy_into_temporary_tables,
    cursor_of,
    unshowable,
    upsert,
)
from app.models import GlanceMirror

# The watermark of an empty Glance: every change comes after it.
EPOCH = dt.datetime(1970, 1, 1)
BACKOFF_START, BACKOFF_MAX = 1.0, 60.0


@dataclass(frozen=True)
class DeletionGuard:
    """A reconcile may mark at most max(floor, share x the source's live images) deleted.

    None at all when Glance has no image: an empty source is never trusted.
    """

    share: float = 0.1
    floor: int = 10

    def limit(self, live, in_glance):
        return max(self.floor, int(self.share * live)) if in_glance else 0


class MirrorRefused(Exception):
    """The mirror will not do this; the message says why and what to do."""


class TooManyDeletions(MirrorRefused):
    """A reconcile would mark more images deleted than the guard and --allow-deletions allow."""

    def __init__(self, name, count, live, limit):
        if limit:
            what = (
                f"Glance no longer has {count} of its {live} images; marking them deleted is "
                f"more than the {limit} allowed"
            )
        else:
            what = f"Glance has no images at all; not marking the source's {count} images deleted"
        super().__init__(
            f"source {name!r}: {what}, so nothing was changed. Check that the source is the "
            f"right Glance; if it really purged them, run: images sync-glance --source {name} "
            f"--prune --allow-deletions {count}"
        )
        self.count = count


class FollowerGaveUp(Exception):
    """No pass succeeded for the bounded time; the supervisor should restart the follower."""


@dataclass
class Pass:
    summary: LoadSummary
    seconds: float
    full: bool
    marked_deleted: int = 0
    removed: int = 0

    def __str__(self):
        kind = "full sync" if self.full else "pass"
        text = f"{kind}: {self.summary} in {self.seconds:.2f} s"
        if self.marked_deleted or self.removed:
            text += f"; purged in Glance: {self.marked_deleted} marked deleted, "
            text += f"{self.removed} removed"
        return text


def sync_all(session, source, *, dry_run=False, on_batch=lambda count: None):
    """Upsert every image of `source`; return the summary. Records the watermark.

    With `dry_run`, count what it would write and write nothing.
    """
    begun, started_at = time.monotonic(), _now()
    newest_change = source.newest_change() or EPOCH
    summary = _apply(session, source.name, source.all_records(), dry_run=dry_run, on_batch=on_batch)
    if dry_run:
        return summary
    with transaction(session):
        analyze(session)
    _save_state(
        session,
        source.name,
        watermark=glance_time(newest_change),
        last_success_at=started_at,
        last_pass_seconds=time.monotonic() - begun,
        last_error=None,
        schema_signature=source.schema_signature,
    )
    return summary


def follow_pass(session, source, *, overlap):
    """Apply the changes since the watermark (less `overlap`).

    A full sync the first time, and after Glance's schema changed.
    """
    begun = time.monotonic()
    state = session.get(GlanceMirror, source.name)
    first = state is None or state.watermark is None
    if first or state.schema_signature != source.schema_signature:
        summary = sync_all(session, source)
        return Pass(summary, time.monotonic() - begun, full=True)
    started_at = _now()
    since = state.watermark.astimezone(dt.UTC).replace(tzinfo=None) - overlap
    changes = source.changes_since(since)
    summary = _apply(session, source.name, source.records_for(changes))
    newest = max([state.watermark, *(glance_time(moment) for moment in changes.values())])
    seconds = time.monotonic() - begun
    _save_state(
        session,
        source.name,
        watermark=newest,
        last_success_at=started_at,
        last_pass_seconds=seconds,
        last_error=None,
    )
    return Pass(summary, seconds, full=False)


def reconcile(session, source, *, guard, allow_deletions=0, dry_run=False):
    """Mark deleted the source's images Glance no longer has; remove those already deleted.

    Returns (marked, removed): done, or with `dry_run` what it would do.

    :raises TooManyDeletions: it would mark more than the guard's limit and
        `allow_deletions` deleted; nothing was changed.
    """
    with tempfile.TemporaryFile("w+") as ids, _writing(session, dry_run):
        cursor = cursor_of(session)
        # An image written through Glance after the list below was read (a
        # newer change number) is not missing from Glance: it is left alone.
        cursor.execute("SELECT last_change FROM catalogue_state")
        (seen,) = cursor.fetchone()
        # Read the whole list before writing anything: a source failing
        # half-way leaves the catalogue as it was.
        for image_id in source.ids():
            ids.write(f"{image_id}\n")
        ids.seek(0)
        cursor.execute(
            "SET LOCAL statement_timeout = 0;"
            "CREATE TEMP TABLE glance_ids (id uuid PRIMARY KEY) ON COMMIT DROP"
        )
        cursor.copy_expert("COPY glance_ids FROM STDIN", ids)
        parameters = {"source": source.name, "seen": seen}
        cursor.execute(_PURGED_COUNTS, parameters)
        in_glance, live, marked, removed = cursor.fetchone()
        limit = guard.limit(live, in_glance)
        if marked > max(limit, allow_deletions):
            raise TooManyDeletions(source.name, marked, live, limit)
        if not dry_run and marked + removed:
            parameters["change"] = take_change_number(cursor)
            cursor.execute(REMOVE.format(chosen=f"deleted AND {_PURGED}"), parameters)
            cursor.execute(MARK_DELETED.format(chosen=_PURGED), parameters)
            cursor.execute(NOTE_DEPARTURES, parameters)
    if not dry_run:
        _save_state(session, source.name, last_reconcile_at=_now(), refused_deletions=None)
    return marked, removed


def follow(
    session, connect, lock, *, interval, overlap, reconcile_every, guard, give_up, stop, log
):
    """Mirror passes every `interval` seconds until `stop` is set.

    `connect()` reads Glance's schema (a GlanceSource): again whenever it
    changed (an upgrade under the follower changes what it reads; the pass
    is then a full one) and after a failed pass. While another process holds
    `lock` (a SourceLock), this follower waits as a standby.

    :raises FollowerGaveUp: no pass succeeded for `give_up` seconds.
    :raises GlanceSchemaError: the source is not a Glance database (before any pass succeeded).
    """
    backoff, last_success, passed, standby = BACKOFF_START, time.monotonic(), False, False
    source = None
    while not stop.is_set():
        wait = interval
        try:
            if not lock.hold():
                if not standby:
                    log.info(f"standby: another follower of source {lock.name!r} is active")
                standby, last_success = True, time.monotonic()
                stop.wait(interval)
                continue
            if standby:
                log.info(f"active: following source {lock.name!r}")
            standby = False
            if source is None or source.schema_changed():
                source = connect()
            done = follow_pass(session, source, overlap=overlap)
            if _reconcile_due(session, source.name, reconcile_every):
                done.marked_deleted, done.removed = reconcile(session, source, guard=guard)
            log.info(str(done))
            backoff, last_success, passed = BACKOFF_START, time.monotonic(), True
        except TooManyDeletions as refusal:
            # The pass itself went through: the follower keeps following.
            record_error(session, lock.name, refusal, refused_deletions=refusal.count)
            log.error(str(refusal))
            last_success = time.monotonic()
        except (sa.exc.SQLAlchemyError, GlanceSchemaError, SourceConflict) as error:
            if isinstance(error, GlanceSchemaError) and not passed:
                raise
            source = None  # read the schema again: it may be what changed
            record_error(session, lock.name, error_summary(error))
            log.warning(f"pass failed, retrying in {backoff:.0f} s: {error_summary(error)}")
            wait, backoff = backoff, min(backoff * 2, BACKOFF_MAX)
        if time.monotonic() - last_success > give_up:
            raise FollowerGaveUp(
                f"no pass of source {lock.name!r} succeeded for {give_up:.0f} s; exiting so "
                "that the service manager restarts the follower"
            )
        stop.wait(wait)


def _reconcile_due(session, name, every):
    state = session.get(GlanceMirror, name)
    last = state.last_reconcile_at if state else None
    return last is None or (_now() - last).total_seconds() >= every


def record_error(session, name, error, **fields):
    """Note a failed pass in glance_mirrors (for /readyz and /metrics); best effort."""
    session.rollback()  # whatever the failed pass left open
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        _save_state(session, name, last_error=str(error)[:2000], last_error_at=_now(), **fields)


def forget_legacy_state(session, legacy_name):
    """Drop the state 1.1 kept under the source's URL (its name now names it instead)."""
    with transaction(session):
        session.execute(sa.delete(GlanceMirror).where(GlanceMirror.source == legacy_name))


def apply_images(session, source, image_ids):
    """Mirror the images `image_ids` of `source` now: what a write through Glance made of them.

    Read from Glance after taking the source's apply lock, as the follower's
    batches are (hold_apply_lock), so that whichever writes last read Glance last.
    """
    return _apply(session, source.name, source.records_for(image_ids))


def _apply(session, name, batches, *, dry_run=False, on_batch=lambda count: None):
    """Upsert each batch of records `batches` yields, one transaction each; return the sum.

    Each batch is read from Glance inside its transaction, under the source's
    apply lock: a batch read before a write through Glance cannot commit after
    that write's result and put the image back as it was.
    """
    summary = LoadSummary()
    # Closed however it ends: the source's reading connection goes back at once.
    with contextlib.closing(batches):
        while True:
            with _writing(session, dry_run):
                hold_apply_lock(session, name)
                records = next(batches, None)
                if records is None:
                    return summary
                summary += _upsert_records(session, name, records, dry_run=dry_run)
            on_batch(len(records))


def _upsert_records(session, name, records, *, dry_run):
    refused = 0
    with Staging(name) as staging:
        for position, record in enumerate(records):
            problem = unshowable(record)
            if problem:
                # Glance holds it; the catalogue could list it but not show it.
                current_app.logger.warning(f"image {record['id']} not mirrored: {problem}")
                refused += 1
                continue
            staging.add(position, record)
        copy_into_temporary_tables(session, staging)
        summary = upsert(session, source=name, apply=not dry_run)
    summary.refused = refused
    return summary


@contextlib.contextmanager
def _writing(session, dry_run):
    """A transaction that commits, or with `dry_run` one that is always rolled back."""
    if not dry_run:
        with transaction(session):
            yield
        return
    try:
        yield
    finally:
        session.rollback()


def _save_state(session, name, **fields):
    statement = insert(GlanceMirror).values(source=name, **fields)
    with transaction(session):
        session.execute(statement.on_conflict_do_update(index_elements=["source"], set_=fields))


def _now():
    return dt.datetime.now(dt.UTC)


# The source's images Glance no longer has (images stands for the catalogue's row),
# but those changed since the list of Glance's ids was read.
_PURGED = (
    "source = %(source)s AND change <= %(seen)s"
    " AND NOT EXISTS (SELECT 1 FROM glance_ids WHERE glance_ids.id = images.id)"
)

_PURGED_COUNTS = f"""
SELECT (SELECT count(*) FROM glance_ids),
       count(*) FILTER (WHERE NOT deleted),
       count(*) FILTER (WHERE NOT deleted AND {_PURGED}),
       count(*) FILTER (WHERE deleted AND {_PURGED})
FROM images WHERE source = %(source)s
"""
