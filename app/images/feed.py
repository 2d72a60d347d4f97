"""GET /v1/images/changes: the change feed, apply-ordered, with tombstones (docs/api.md, "Polling").

Each page lists, oldest first, what changed for the caller after the
cursor `since`: every image the caller sees, once, in its latest state and
exactly as the detail listing renders it, and `{"id": ..., "visible":
false}` for each image the caller saw and no longer sees; then the cursor to
ask with next. Positions are (change number, image id): change numbers are
taken in commit order (app/loading/changes.py), so a poller that asks again
with the cursor it got never misses a change.
"""

import uuid

from flask import g, request
from werkzeug.exceptions import BadRequest, Gone

from app.freshness import change_state
from app.images import bp, cursors, repository
from app.images.routes import dump_detail, json_text
from app.images.schemas import ChangesQuerySchema, query_params
from app.web.answers import answer

changes_query_schema = ChangesQuerySchema()


@bp.get("/changes")
def list_changes():
    """List what changed for the caller after the cursor `since`, and the cursor to ask with next.

    :raises 400: a cursor this catalogue did not issue (or not as sent), a bad limit.
    :raises 410: a cursor older than the tombstones kept: list again.
    """
    since, limit = changes_query_schema.load(query_params(request.args))
    return answer(
        ("changes", since, limit), lambda reader, current: _page(reader, current, since, limit)
    )


def _page(reader, current, since, limit):
    position = _position(current, since)
    _refuse_if_pruned(current, position)
    changes = []
    after = (position.change, position.image_id)
    # A poller that caught up with the latest change has nothing to read.
    if limit and after != (current.number, cursors.LAST_ID):
        changes = repository.changes_page(reader, g.caller, after, limit)
        # The page was read in a statement of its own: a prune may have
        # committed since `current` was read, taking tombstones it needed.
        _refuse_if_pruned(change_state(reader), position)
    shown = iter(dump_detail([change.row for change in changes if change.row is not None]))
    entries = [
        next(shown) if change.row is not None else {"id": change.image_id, "visible": False}
        for change in changes
    ]
    cursor = cursors.encode(
        _next_position(position, changes, limit, current), current.deployment, current.cursor_key
    )
    return json_text({"changes": entries, "cursor": cursor})


def _refuse_if_pruned(current, position):
    """:raises 410: tombstones after `position` were pruned."""
    if current.pruned_through > max(position.held, position.change):
        raise Gone(
            description="The cursor is older than the change history this catalogue keeps: "
            "images you saw may have left your view since. List again: ask without since "
            "(the first pages list every image you may see) and go on with the cursor you get."
        )


def _position(current, since):
    """Where the page starts: after `since`, or before every change (holding nothing yet)."""
    if since is None:
        return cursors.Position(current.number, -1, cursors.LAST_ID)
    try:
        return cursors.decode(since, current.deployment, current.cursor_key)
    except cursors.InvalidCursor as error:
        raise BadRequest(description=f"Bad value passed to since: {error}.") from None


def _next_position(position, changes, limit, current):
    """After the last entry of a full page; after everything the page's read saw otherwise.

    A page shorter than `limit` listed every entry up to the latest change
    its statement saw, which is at least `current.number` (read before it).
    """
    if limit and len(changes) == limit:
        last = changes[-1]
        return cursors.Position(position.held, last.change, uuid.UUID(last.image_id))
    if not limit:
        return position
    newest = max([current.number, *(change.change for change in changes)])
    return cursors.Position.caught_up(newest)
