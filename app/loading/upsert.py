"""The one way images are written: stage records in COPY files, then upsert them by id.

Every writer (JSON Lines import, synthetic catalogue, Glance mirror) hands
records shaped like the listing's 18 fields plus `properties`, `members`
({project: can_share}) and an optional `hidden` to a Staging of its source,
then calls `upsert`. Staging keeps rows in temporary files in COPY text
format (bounded memory); `upsert` copies them into temporary tables and
writes only what differs: an image whose fields, properties and members are
all unchanged is not touched, so a second identical load writes nothing.

Each image belongs to the source that loaded it (images.source). A load
never takes over another source's image: it is refused whole, naming both
sources (SourceConflict). An image of no source (loaded before sources were
recorded, or released by `images forget-source`) is claimed by the next load
that writes it.

Transactions follow app.db.transaction's rule: `load` is a unit of work (one
transaction, committed at its end); `copy_into_temporary_tables`, `upsert`
and `analyze` run inside their caller's transaction. A load that changes
images takes a change number (app/loading/changes.py) just before writing
them, which holds back other writers until it commits.
"""

import contextlib
import tempfile
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app

from app.db import transaction
from app.images.headers import (
    META_HEADERS_MAX_BYTES,
    meta_headers_bytes,
    meta_headers_bytes_at_most,
)
from app.images.schemas import image_schema
from app.loading.changes import (
    ANSWER_SLACK_SECONDS,
    NOTE_DEPARTURES,
    NOTE_STAGED_UNSEEN,
    RECORD_STAGED_DEPARTURES,
    take_change_number,
)
from app.models import IMAGE_COLUMNS, Image

COPY_BUFFER = 1 << 20
# What a load writes of an image: its fields, then the catalogue's own columns.
WRITTEN_COLUMNS = (*IMAGE_COLUMNS, "hidden", "source")
CONFLICTS_SHOWN = 20


@dataclass
class LoadSummary:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    # Images left out because image-show could not answer them (unshowable).
    refused: int = 0

    def __iadd__(self, other):
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.refused += other.refused
        return self

    @property
    def changed(self):
        return self.inserted + self.updated

    def __str__(self):
        text = f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged"
        if self.refused:
            text += f", {self.refused} refused (too large for image-show)"
        return text


def unshowable(record):
    """Why image-show could not answer `record` through the shipped proxies, or None.

    Its metadata headers would be more than they read from the service in
    one answer (META_HEADERS_MAX_BYTES): a 502 from nginx or HAProxy.
    """
    if meta_headers_bytes_at_most(record) <= META_HEADERS_MAX_BYTES:
        return None  # nearly every image: rendering its headers would cost 50 µs
    size = meta_headers_bytes(image_schema.dump(record))
    if size <= META_HEADERS_MAX_BYTES:
        return None
    return (
        f"its metadata would take {size} bytes of image-show headers (HEAD /v1/images/<id>), "
        f"more than the {META_HEADERS_MAX_BYTES} the service can answer; shorten or remove "
        "properties (docs/api.md, 'One image')"
    )


class Staging(contextlib.ExitStack):
    """Records of one source in COPY text format, kept on disk so memory stays flat.

    `position` (a line number, or any increasing number) names a record in
    error messages, e.g. for ids that appear twice.
    """

    def __init__(self, source):
        super().__init__()
        self.source = source

    def __enter__(self):
        super().__enter__()
        self.images, self.properties, self.members = (
            self.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))  # noqa: SIM115
            for _ in range(3)
        )
        self.count = 0
        return self

    def add(self, position, record):
        self.count += 1
        image_id = record["id"]
        fields = [record[name] for name in IMAGE_COLUMNS]
        self.images.write(_copy_row([*fields, record.get("hidden", False), self.source, position]))
        for name, value in record["properties"].items():
            self.properties.write(_copy_row((image_id, name, value)))
        for member, can_share in record["members"].items():
            self.members.write(_copy_row((image_id, member, can_share)))


def _copy_row(values):
    return "\t".join(map(_copy_value, values)) + "\n"


def _copy_value(value):
    if value is None:
        return r"\N"
    return (
        str(value)
        .replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def copy_into_temporary_tables(session, staging):
    """COPY the staged rows into staged_images/_properties/_members (dropped at commit)."""
    cursor = cursor_of(session)
    cursor.execute(
        # The service's statement timeout protects requests, not bulk loads.
        "SET LOCAL statement_timeout = 0;"
        "CREATE TEMP TABLE staged_images (LIKE images INCLUDING DEFAULTS, position bigint)"
        " ON COMMIT DROP;"
        "CREATE TEMP TABLE staged_properties (LIKE image_properties) ON COMMIT DROP;"
        "CREATE TEMP TABLE staged_members (LIKE image_members) ON COMMIT DROP;"
    )
    for table, staged in (
        (f"staged_images ({', '.join(WRITTEN_COLUMNS)}, position)", staging.images),
        ("staged_properties", staging.properties),
        ("staged_members (image_id, member, can_share)", staging.members),
    ):
        staged.seek(0)
        cursor.copy_expert(f"COPY {table} FROM STDIN", staged, size=COPY_BUFFER)


class SourceConflict(Exception):
    """Staged images belong to another source; nothing was written.

    `conflicts`: (id, the other source) of the first CONFLICTS_SHOWN, `count` all of them.
    """

    def __init__(self, source, conflicts, count):
        image_id, other = conflicts[0]
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(
            f"image {image_id} belongs to source {other!r}, not {source!r}{more}; nothing was "
            f"written. To hand {other!r}'s images over, run `images forget-source {other}` first"
        )
        self.source, self.conflicts, self.count = source, conflicts, count


class RepeatedIds(Exception):
    """Staged records share ids; nothing was written. `repeats`: (id, [positions])."""

    def __init__(self, repeats):
        super().__init__(f"{len(repeats)} id(s) appear more than once")
        self.repeats = repeats


def load(session, numbered_records, *, source, on_staged=lambda count: None):
    """Upsert (position, record) pairs of `source` in one transaction.

    :raises RepeatedIds: two records share an id; nothing was written.
    :raises SourceConflict: an image belongs to another source; nothing was written.
    """
    with Staging(source) as staging, transaction(session):
        for position, record in numbered_records:
            staging.add(position, record)
        on_staged(staging.count)
        copy_into_temporary_tables(session, staging)
        repeats = _repeated_ids(session)
        if repeats:
            raise RepeatedIds(repeats)
        summary = upsert(session, source=source)
    # After the commit: other writers need not wait for it.
    with transaction(session):
        analyze(session)
    return summary


def _repeated_ids(session):
    cursor = cursor_of(session)
    cursor.execute(
        "SELECT id, array_agg(position ORDER BY position) FROM staged_images"
        " GROUP BY id HAVING count(*) > 1 ORDER BY min(position)"
    )
    return cursor.fetchall()


def upsert(session, *, source, apply=True):
    """Write the staged images that differ from the stored ones; record the load.

    With `apply` false, only count what it would write (a dry run).

    :raises SourceConflict: a staged image belongs to another source.
    """
    cursor = cursor_of(session)
    _refuse_other_sources(cursor, source)
    cursor.execute(_FIND_CHANGES)
    cursor.execute("SELECT count(*) FILTER (WHERE inserted), count(*) FROM staged_changes")
    inserted, changed = cursor.fetchone()
    cursor.execute("SELECT count(*) FROM staged_images")
    (total,) = cursor.fetchone()
    summary = LoadSummary(inserted, changed - inserted, total - changed)
    if not apply:
        return summary
    if summary.changed:
        margin = current_app.config["CHANGES_SINCE_MARGIN_SECONDS"]
        numbered = {"change": take_change_number(cursor), "late": margin - ANSWER_SLACK_SECONDS}
        cursor.execute(RECORD_STAGED_DEPARTURES, numbered)
        cursor.execute(NOTE_STAGED_UNSEEN, numbered)
        cursor.execute(NOTE_DEPARTURES, numbered)
        cursor.execute(_APPLY_CHANGES, numbered)
    cursor.execute(
        "INSERT INTO catalogue_loads (source, inserted, updated, unchanged)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (source) DO UPDATE SET"
        " (finished_at, inserted, updated, unchanged) ="
        " (clock_timestamp(), EXCLUDED.inserted, EXCLUDED.updated, EXCLUDED.unchanged)",
        (source, summary.inserted, summary.updated, summary.unchanged),
    )
    return summary


def _refuse_other_sources(cursor, source):
    cursor.execute(
        "SELECT staged.id, stored.source, count(*) OVER ()"
        " FROM staged_images AS staged JOIN images AS stored USING (id)"
        " WHERE stored.source <> staged.source ORDER BY staged.position LIMIT %s",
        (CONFLICTS_SHOWN,),
    )
    rows = cursor.fetchall()
    if rows:
        raise SourceConflict(source, [(image_id, other) for image_id, other, _ in rows], rows[0][2])


def analyze(session):
    """Fresh planner statistics: a bulk load can change the data's shape."""
    cursor_of(session).execute("ANALYZE images; ANALYZE image_properties; ANALYZE image_members")


def is_empty(session):
    return session.execute(sa.select(Image.id).limit(1)).first() is None


def cursor_of(session):
    """A psycopg2 cursor in the session's transaction (for COPY and multi-statement SQL)."""
    return session.connection().connection.cursor()


_FIELDS = ", ".join(WRITTEN_COLUMNS)
_COMPARED = ", ".join(name for name in WRITTEN_COLUMNS if name != "id")

# An image changes if it is new, if any field differs, or if its property or
# member set differs (a symmetric difference of the staged and stored rows).
_FIND_CHANGES = f"""CREATE TEMP TABLE staged_changes ON COMMIT DROP AS
SELECT id, bool_or(inserted) AS inserted FROM (
    SELECT staged.id, stored.id IS NULL AS inserted
    FROM staged_images AS staged LEFT JOIN images AS stored USING (id)
    WHERE stored.id IS NULL
       OR ({", ".join(f"stored.{name}" for name in WRITTEN_COLUMNS if name != "id")})
          IS DISTINCT FROM
          ({", ".join(f"staged.{name}" for name in WRITTEN_COLUMNS if name != "id")})
    UNION ALL
    SELECT image_id, false FROM (
        (SELECT image_id, name, value FROM staged_properties
         EXCEPT
         SELECT image_id, name, value FROM image_properties
         WHERE image_id IN (SELECT id FROM staged_images))
        UNION ALL
        (SELECT image_id, name, value FROM image_properties
         WHERE image_id IN (SELECT id FROM staged_images)
         EXCEPT
         SELECT image_id, name, value FROM staged_properties)
    ) AS property_changes
    UNION ALL
    SELECT image_id, false FROM (
        (SELECT image_id, member, can_share FROM staged_members
         EXCEPT
         SELECT image_id, member, can_share FROM image_members
         WHERE image_id IN (SELECT id FROM staged_images))
        UNION ALL
        (SELECT image_id, member, can_share FROM image_members
         WHERE image_id IN (SELECT id FROM staged_images)
         EXCEPT
         SELECT image_id, member, can_share FROM staged_members)
    ) AS member_changes
) AS changes
GROUP BY id
"""

# In created_at order, most index insertions land next to the previous one:
# every images index but the id and owner ones has created_at first or right
# after a low-cardinality sort key.
_APPLY_CHANGES = f"""DELETE FROM image_properties WHERE image_id IN (SELECT id FROM staged_changes);
DELETE FROM image_members WHERE image_id IN (SELECT id FROM staged_changes);
INSERT INTO images ({_FIELDS}, change)
SELECT {", ".join(f"staged.{name}" for name in WRITTEN_COLUMNS)}, %(change)s
FROM staged_images AS staged JOIN staged_changes USING (id)
ORDER BY staged.created_at, staged.id
ON CONFLICT (id) DO UPDATE SET ({_COMPARED}, change) = ROW({
    ", ".join(f"EXCLUDED.{name}" for name in WRITTEN_COLUMNS if name != "id")
}, EXCLUDED.change);
INSERT INTO image_properties
SELECT staged.* FROM staged_properties AS staged JOIN staged_changes ON id = image_id
ORDER BY image_id;
INSERT INTO image_members
SELECT staged.* FROM staged_members AS staged JOIN staged_changes ON id = image_id
ORDER BY image_id;
"""
