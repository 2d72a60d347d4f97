"""`images sync-glance`: mirror a Glance database into the catalogue, once or continuously.

A full sync upserts every Glance image, one transaction per batch (a batch is
mirrored completely or not at all), through app/loading/upsert.py, so a
second run changes nothing. Following, each pass applies what changed since
the watermark kept in the catalogue (glance_mirrors), so a restarted follower
resumes where it stopped:

- images whose updated_at or created_at moved, and images whose memberships
  changed (a membership change does not touch the image's updated_at);
- re-read over an overlap window before the watermark, because Glance's
  transactions commit out of timestamp order (upserts are idempotent);
- and now and then a reconcile of every id, for images `glance-manage db
  purge` removed without a trace: still listed here, they are marked deleted
  (so changes-since pollers learn of it); already deleted, they are removed.

A pass that fails (source or catalogue unreachable) writes nothing more and
is retried with backoff; the follower never exits for that.
"""

import contextlib
import datetime as dt
import tempfile
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from app.db import error_summary, transaction
from app.loading.glance_source import GlanceSource, glance_time, source_name
from app.loading.upsert import (
    LoadSummary,
    Staging,
    analyze,
    copy_into_temporary_tables,
    cursor_of,
    upsert,
)
from app.models import GlanceMirror

SOURCE = "glance"
# The watermark of an empty Glance: every change comes after it.
EPOCH = dt.datetime(1970, 1, 1)


class MirrorRefused(Exception):
    """The mirror will not do this (e.g. mark every image deleted); the message says why."""


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


def sync_all(session, source, *, on_batch=lambda count: None):
    """Upsert every image of `source`; return the summary. Records the watermark."""
    begun, started_at = time.monotonic(), _now()
    newest_change = source.newest_change() or EPOCH
    summary = LoadSummary()
    for records in source.all_records():
        summary += _upsert_batch(session, records)
        on_batch(len(records))
    with transaction(session):
        analyze(session)
    _save_state(
        session,
        source.name,
        watermark=glance_time(newest_change),
        last_success_at=started_at,
        last_pass_seconds=time.monotonic() - begun,
        last_error=None,
    )
    return summary


def follow_pass(session, source, *, overlap):
    """Apply the changes since the watermark (less `overlap`); a full sync the first time."""
    begun = time.monotonic()
    state = session.get(GlanceMirror, source.name)
    if state is None or state.watermark is None:
        summary = sync_all(session, source)
        return Pass(summary, time.monotonic() - begun, full=True)
    started_at = _now()
    since = state.watermark.astimezone(dt.UTC).replace(tzinfo=None) - overlap
    changes = source.changes_since(since)
    summary = LoadSummary()
    for records in source.records_for(changes):
        summary += _upsert_batch(session, records)
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


def reconcile(session, source):
    """Mark deleted the images Glance no longer has; remove those already deleted.

    :raises MirrorRefused: the source has no image at all while the catalogue has some.
    """
    with tempfile.TemporaryFile("w+") as ids, transaction(session):
        # Read the whole list before writing anything: a source failing
        # half-way leaves the catalogue as it was.
        for image_id in source.ids():
            ids.write(f"{image_id}\n")
        ids.seek(0)
        cursor = cursor_of(session)
        cursor.execute(
            "SET LOCAL statement_timeout = 0;"
            "CREATE TEMP TABLE glance_ids (id uuid PRIMARY KEY) ON COMMIT DROP"
        )
        cursor.copy_expert("COPY glance_ids FROM STDIN", ids)
        cursor.execute("SELECT count(*) FROM glance_ids")
        if cursor.fetchone()[0] == 0 and session.scalar(sa.text("SELECT count(*) FROM images")):
            raise MirrorRefused(
                f"{source.name} has no images at all; not marking the whole catalogue deleted"
            )
        cursor.execute(_REMOVE_PURGED)
        removed = cursor.rowcount
        cursor.execute(_MARK_PURGED)
        (marked,) = cursor.fetchone()
    _save_state(session, source.name, last_reconcile_at=_now())
    return marked, removed


BACKOFF_START, BACKOFF_MAX = 1.0, 60.0


def follow(session, source_url, *, interval, overlap, reconcile_every, stop, log):
    """Mirror passes every `interval` seconds until `stop` is set; never exits on an outage.

    A pass that fails is logged and retried after a backoff growing from 1 s
    to a minute. Only a source that is not a Glance database ends it
    (GlanceSchemaError).
    """
    source, backoff = None, BACKOFF_START
    while not stop.is_set():
        try:
            source = source or GlanceSource(source_url)
            done = follow_pass(session, source, overlap=overlap)
            if _reconcile_due(session, source.name, reconcile_every):
                done.marked_deleted, done.removed = reconcile(session, source)
            log.info(str(done))
            wait, backoff = interval, BACKOFF_START
        except MirrorRefused as refusal:
            record_error(session, source.name, refusal)
            log.error(str(refusal))
            wait = interval
        except sa.exc.SQLAlchemyError as error:
            record_error(session, source_name(source_url), error_summary(error))
            log.warning(f"pass failed, retrying in {backoff:.0f} s: {error_summary(error)}")
            wait, backoff = backoff, min(backoff * 2, BACKOFF_MAX)
        stop.wait(wait)


def _reconcile_due(session, name, every):
    state = session.get(GlanceMirror, name)
    last = state.last_reconcile_at if state else None
    return last is None or (_now() - last).total_seconds() >= every


def record_error(session, source_name, error):
    """Note a failed pass in glance_mirrors (for /readyz); best effort."""
    session.rollback()  # whatever the failed pass left open
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        _save_state(session, source_name, last_error=str(error)[:2000], last_error_at=_now())


def _upsert_batch(session, records):
    with Staging() as staging, transaction(session):
        for position, record in enumerate(records):
            staging.add(position, record)
        copy_into_temporary_tables(session, staging)
        return upsert(session, source=SOURCE)


def _save_state(session, source_name, **fields):
    statement = insert(GlanceMirror).values(source=source_name, **fields)
    with transaction(session):
        session.execute(statement.on_conflict_do_update(index_elements=["source"], set_=fields))


def _now():
    return dt.datetime.now(dt.UTC)


_REMOVE_PURGED = """
DELETE FROM images
WHERE deleted AND NOT EXISTS (SELECT 1 FROM glance_ids WHERE glance_ids.id = images.id)
"""

_MARK_PURGED = """
WITH purged AS (
    UPDATE images SET status = 'deleted', deleted = true,
        deleted_at = coalesce(deleted_at, clock_timestamp()), updated_at = clock_timestamp()
    WHERE NOT deleted AND NOT EXISTS (SELECT 1 FROM glance_ids WHERE glance_ids.id = images.id)
    RETURNING id
), gone_properties AS (
    DELETE FROM image_properties WHERE image_id IN (SELECT id FROM purged)
), gone_members AS (
    DELETE FROM image_members WHERE image_id IN (SELECT id FROM purged)
)
SELECT count(*) FROM purged
"""
