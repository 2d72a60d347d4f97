"""Change numbers and tombstones: what the change feed (app/images/feed.py) reads.

Every transaction that changes images (a load's upsert, a deletion mark, a
reconcile, forget-source) takes one change number, before it writes any
image: image_catalogue_change_number() (migrations/versions/3e4f5a6b7c8d)
sets `catalogue_state.last_change + 1`, which leaves that row locked until
the transaction ends, and returns the same number to later calls of the
transaction. A second writer waits for the first to commit or roll back
before it gets its number, so numbers are taken in commit order: once a
reader has seen change N committed, no change numbered below N can commit
any more. A writer killed mid-transaction rolls back, and its number is
taken again by the next writer, never skipped over. (A trigger takes the
number before any write to the image tables, so even a write that is not
the catalogue's own changes it; only the catalogue's writers number the
images, which is what the feed reads.)

Each changed image gets the number (images.change), and so does each
audience that stops seeing it (image_departures: a project whose membership
or ownership ended, every project when it stops being public, everyone when
it is removed), for the feed's tombstones. Numbers are per transaction; the
feed orders by (change, image id).

A change that plain changes-since cannot show everyone it concerns (someone
stops seeing an image, gains one by a share, or an image arrives with an
updated_at older than the changes-since margin allows) becomes the
catalogue's `relist_change`: changes-since pollers list again when it moves
(docs/api.md, "Polling").
"""

import sqlalchemy as sa

from app.db import transaction

# An audience that is one project: "project:<id>" (the SQL below spells it too).
PROJECT = "project:"


def take_change_number(cursor):
    """The number of the change this transaction applies (its first write: see above)."""
    cursor.execute("SELECT image_catalogue_change_number()")
    (number,) = cursor.fetchone()
    return number


# A departure recorded again is dated by its latest change.
DEPARTED_AGAIN = (
    "ON CONFLICT (image_id, audience) DO UPDATE"
    " SET change = EXCLUDED.change, departed_at = EXCLUDED.departed_at"
)

# Who stops seeing the staged images (app/loading/upsert.py's temporary
# tables) that staged_changes names, run before they are written: members
# whose membership ends (or whose image is deleted, which ends them), an
# owner it no longer has, and everyone, if it stops being public.
RECORD_STAGED_DEPARTURES = f"""
INSERT INTO image_departures (image_id, audience, change)
SELECT DISTINCT id, audience, %(change)s FROM (
    SELECT stored.image_id AS id, 'project:' || stored.member AS audience
    FROM image_members AS stored
    JOIN staged_changes AS changed ON changed.id = stored.image_id
    JOIN images AS image ON image.id = stored.image_id
    JOIN staged_images AS staged ON staged.id = stored.image_id
    WHERE NOT image.deleted AND (staged.deleted OR NOT EXISTS (
        SELECT 1 FROM staged_members AS kept
        WHERE kept.image_id = stored.image_id AND kept.member = stored.member))
    UNION ALL
    SELECT image.id, 'project:' || image.owner
    FROM images AS image JOIN staged_changes USING (id) JOIN staged_images AS staged USING (id)
    WHERE image.owner IS NOT NULL AND image.owner IS DISTINCT FROM staged.owner
    UNION ALL
    SELECT image.id, 'public'
    FROM images AS image JOIN staged_changes USING (id) JOIN staged_images AS staged USING (id)
    WHERE image.is_public AND NOT staged.is_public
) AS departed
{DEPARTED_AGAIN}
"""

# The change is one changes-since cannot show: someone stopped seeing an image.
NOTE_DEPARTURES = """
UPDATE catalogue_state SET relist_change = %(change)s
WHERE id = 1 AND EXISTS (SELECT 1 FROM image_departures WHERE change = %(change)s)
"""

# A poller asks changes-since from its previous answer's Date less the margin:
# an image must arrive within the margin less this (the answer's own time,
# Date's whole seconds) of its updated_at for that poller to see it.
ANSWER_SLACK_SECONDS = 60

# Run before the staged images are written: the change is one changes-since
# cannot show if a project gains one by a share (which leaves updated_at as
# it was), or one's updated_at is older than `late` seconds (it arrived late,
# or was loaded with an old date), or it has none. Late as of now, not as of
# the transaction's start: a load may have waited for its turn and read long.
NOTE_STAGED_UNSEEN = """
UPDATE catalogue_state SET relist_change = %(change)s
WHERE id = 1 AND (
    EXISTS (
        SELECT 1 FROM staged_members AS staged JOIN staged_changes ON id = staged.image_id
        WHERE NOT EXISTS (
            SELECT 1 FROM image_members AS stored
            WHERE stored.image_id = staged.image_id AND stored.member = staged.member))
    OR EXISTS (
        SELECT 1 FROM staged_images AS staged JOIN staged_changes USING (id)
        WHERE staged.updated_at IS NULL
           OR staged.updated_at < clock_timestamp() - make_interval(secs => %(late)s)))
"""

# Marks the live images `chosen` (a condition on images) deleted, as Glance's
# soft delete did: properties and members go with them, and the members stop
# seeing them. Counts them.
MARK_DELETED = f"""
WITH marked AS (
    UPDATE images SET status = 'deleted', deleted = true,
        deleted_at = coalesce(deleted_at, clock_timestamp()), updated_at = clock_timestamp(),
        change = %(change)s
    WHERE NOT deleted AND {{chosen}}
    RETURNING id
), gone_properties AS (
    DELETE FROM image_properties WHERE image_id IN (SELECT id FROM marked)
), gone_members AS (
    DELETE FROM image_members WHERE image_id IN (SELECT id FROM marked)
    RETURNING image_id, member
), departed AS (
    INSERT INTO image_departures (image_id, audience, change)
    SELECT image_id, 'project:' || member, %(change)s FROM gone_members
    {DEPARTED_AGAIN}
)
SELECT count(*) FROM marked
"""

# Removes the images `chosen` for good (their properties and members go by
# cascade): everyone who saw them stops seeing them, admins too. Counts them.
REMOVE = f"""
WITH removed AS (
    DELETE FROM images WHERE {{chosen}} RETURNING id, owner, is_public
), departed AS (
    INSERT INTO image_departures (image_id, audience, change)
    SELECT id, audience, %(change)s
    FROM removed, LATERAL (VALUES
        ('removed'), ('project:' || owner), (CASE WHEN is_public THEN 'public' END)
    ) AS departures (audience)
    WHERE audience IS NOT NULL
    {DEPARTED_AGAIN}
)
SELECT count(*) FROM removed
"""


def prune_departures(session, older_than_seconds):
    """Forget the tombstones older than `older_than_seconds`; return (how many, pruned through).

    A change-feed cursor from before the newest pruned one is then a 410
    (app/images/feed.py): its poller may have missed one. The prune takes a
    change number, so an answer given before it is not given again.
    """
    age = {"age": older_than_seconds}
    with transaction(session):
        if not session.execute(sa.text(_ANY_OLDER), age).scalar():
            return 0, session.execute(sa.text(_PRUNED_THROUGH)).scalar()
        session.execute(sa.text("SELECT image_catalogue_change_number()"))
        return tuple(session.execute(sa.text(_PRUNE), age).one())


_OLDER = "departed_at < now() - make_interval(secs => :age)"
_ANY_OLDER = f"SELECT EXISTS (SELECT 1 FROM image_departures WHERE {_OLDER})"
_PRUNED_THROUGH = "SELECT pruned_through FROM catalogue_state WHERE id = 1"
_PRUNE = f"""
WITH pruned AS (DELETE FROM image_departures WHERE {_OLDER} RETURNING change)
UPDATE catalogue_state
SET pruned_through = greatest(pruned_through, (SELECT max(change) FROM pruned))
WHERE id = 1
RETURNING (SELECT count(*) FROM pruned), pruned_through
"""
