"""GET /v1/images/changes: order, paging, tombstones for every way an image leaves a view, 410s,
bad cursors."""

import base64
import uuid

import pytest
import sqlalchemy as sa

from app.db import db
from app.images import cursors
from app.models import CatalogueState
from helpers import CIRROS, DETAIL, error_message, image_ids, import_line

A, B, C = (
    f"{digit}{digit}{digit}{digit}{digit}{digit}{digit}{digit}-0000-4000-8000-000000000000"
    for digit in "abc"
)


def _changes(client, token, since=None, limit=None, path="/v1/images/changes"):
    params = {
        key: value for key, value in (("since", since), ("limit", limit)) if value is not None
    }
    return client.get(path, query_string=params, headers={"X-Auth-Token": token})


def _page(client, token, since=None, limit=None):
    response = _changes(client, token, since, limit)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _follow(client, token, since=None, limit=None):
    """Every entry from `since` on, page by page; and the last cursor."""
    entries = []
    while True:
        page = _page(client, token, since, limit)
        entries += page["changes"]
        since = page["cursor"]
        if len(page["changes"]) < (limit or 25):
            return entries, since


def _import(run, *lines):
    result = run("images", "import", "-", input="".join(line + "\n" for line in lines))
    assert result.exit_code == 0, result.output


def _ids(entries):
    return [(entry["id"], entry.get("visible", True)) for entry in entries]


def test_entries_come_in_change_order_once_each_in_their_latest_state(
    client, run, make_token, list_images
):
    token = make_token("p1")
    _import(run, import_line(id=A, name="a"), import_line(id=B, name="b"))
    _import(run, import_line(id=C, name="c"))
    _import(run, import_line(id=A, name="a2"))
    entries, _ = _follow(client, token)
    assert _ids(entries) == [(B, True), (C, True), (A, True)]
    assert entries[-1]["name"] == "a2"
    # Exactly as the detail listing renders it.
    (listed,) = [
        image for image in list_images(token=token).get_json()["images"] if image["id"] == A
    ]
    assert entries[-1] == listed and list(entries[-1]) == list(CIRROS)


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_paging_with_limit_walks_every_entry_once(client, run, make_token, limit):
    token = make_token("p1")
    ids = [str(uuid.UUID(int=number + 1)) for number in range(7)]
    _import(run, *(import_line(id=image_id) for image_id in ids[:4]))
    _import(run, *(import_line(id=image_id) for image_id in ids[4:]))
    entries, cursor = _follow(client, token, limit=limit)
    assert [entry["id"] for entry in entries] == ids
    # Caught up: the next page is empty and hands back a cursor to poll with.
    page = _page(client, token, cursor, limit)
    assert page["changes"] == [] and page["cursor"]
    _import(run, import_line(id=ids[0], name="again"))
    assert _ids(_page(client, token, page["cursor"], limit)["changes"]) == [(ids[0], True)]


def _caught_up(client, token):
    return _follow(client, token)[1]


def _visible_to(client, token, since):
    return _ids(_follow(client, token, since)[0])


def test_a_project_learns_it_lost_a_share_and_gains_one(client, run, make_token):
    owner, member, other = make_token("p1"), make_token("p2"), make_token("p3")
    _import(run, import_line(id=A, is_public=False, owner="p1", members=["p2"]))
    cursors_before = {token: _caught_up(client, token) for token in (owner, member, other)}
    _import(run, import_line(id=A, is_public=False, owner="p1", members=[]))
    assert _visible_to(client, member, cursors_before[member]) == [(A, False)]
    assert _visible_to(client, owner, cursors_before[owner]) == [(A, True)]
    # A project that never saw it learns nothing of it.
    assert _visible_to(client, other, cursors_before[other]) == []
    since = _caught_up(client, other)
    _import(run, import_line(id=A, is_public=False, owner="p1", members=["p3"]))
    assert _visible_to(client, other, since) == [(A, True)]


def test_made_private_the_image_leaves_every_project_but_its_owner_and_members(
    client, run, make_token
):
    owner, member, other = make_token("p1"), make_token("p2"), make_token("p3")
    anonymous = make_token(None)
    _import(run, import_line(id=A, is_public=True, owner="p1", members=["p2"]))
    before = {token: _caught_up(client, token) for token in (owner, member, other, anonymous)}
    _import(run, import_line(id=A, is_public=False, owner="p1", members=["p2"]))
    assert _visible_to(client, other, before[other]) == [(A, False)]
    assert _visible_to(client, anonymous, before[anonymous]) == [(A, False)]
    assert _visible_to(client, member, before[member]) == [(A, True)]
    assert _visible_to(client, owner, before[owner]) == [(A, True)]


def test_a_new_owner_takes_it_from_the_old_one(client, run, make_token):
    old, new = make_token("p1"), make_token("p2")
    _import(run, import_line(id=A, is_public=False, owner="p1"))
    before = {token: _caught_up(client, token) for token in (old, new)}
    _import(run, import_line(id=A, is_public=False, owner="p2"))
    assert _visible_to(client, old, before[old]) == [(A, False)]
    assert _visible_to(client, new, before[new]) == [(A, True)]


@pytest.mark.parametrize("how", ["imported deleted", "forget-source --delete-images"])
def test_deleting_a_shared_image_ends_its_members_view_not_its_owners(client, run, make_token, how):
    owner, member = make_token("p1"), make_token("p2")
    _import(run, import_line(id=A, is_public=False, owner="p1", members=["p2"]))
    before = {token: _caught_up(client, token) for token in (owner, member)}
    if how == "imported deleted":
        _import(run, import_line(id=A, is_public=False, owner="p1", status="deleted", deleted=True))
    else:
        assert run("images", "forget-source", "import", "--delete-images").exit_code == 0
    assert _visible_to(client, member, before[member]) == [(A, False)]
    (entry,) = _follow(client, owner, before[owner])[0]
    assert (entry["id"], entry["deleted"], entry["status"]) == (A, True, "deleted")


def test_admins_follow_every_image(client, run, make_token):
    admin = make_token("p9", roles=("admin",))
    before = _caught_up(client, admin)
    _import(run, import_line(id=A, is_public=False, owner="p1"), import_line(id=B, owner=None))
    _import(run, import_line(id=A, is_public=False, owner="p1", hidden=True, status="killed"))
    assert _visible_to(client, admin, before) == [(B, True), (A, True)]


def test_the_v1_1_path_serves_the_same_feed(client, run, make_token):
    token = make_token("p1")
    _import(run, import_line(id=A))
    assert (
        _changes(client, token, path="/v1.1/images/changes").get_json()
        == _changes(client, token).get_json()
    )


def _state(app):
    with app.app_context():
        return db.session.get(CatalogueState, 1)


def _age_tombstones(app, seconds):
    with app.app_context():
        db.session.execute(
            sa.text(
                "UPDATE image_departures SET departed_at = departed_at - make_interval(secs => :s)"
            ),
            {"s": seconds},
        )
        db.session.commit()


def test_a_cursor_older_than_the_pruned_tombstones_is_gone(app, client, run, make_token):
    member, other = make_token("p2"), make_token("p3")
    _import(run, import_line(id=A, is_public=False, owner="p1", members=["p2"]))
    stale = _caught_up(client, member)
    _import(run, import_line(id=A, is_public=False, owner="p1", members=[]))
    _import(run, import_line(id=B))
    caught_up = _caught_up(client, other)
    _age_tombstones(app, 8 * 24 * 3600)

    result = run("images", "prune-changes")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pruned 1 tombstone(s) older than 604800 s")

    gone = _changes(client, member, stale)
    assert "List again: ask without since" in error_message(gone, 410)
    assert _page(client, other, caught_up)["changes"] == []
    # Starting again lists what the member may see: not A, which it no longer sees.
    assert _ids(_follow(client, member)[0]) == [(B, True)]


def test_pages_from_the_start_go_on_after_a_prune(app, client, run, make_token):
    # A poller part-way through its first pages holds images as of its first
    # page: tombstones pruned before that were never its concern.
    token = make_token("p1")
    _import(run, import_line(id=A, is_public=False, owner="p1", members=["p2"]))
    _import(run, import_line(id=A, is_public=False, owner="p1", members=[]))
    _import(run, import_line(id=B), import_line(id=C))
    _age_tombstones(app, 8 * 24 * 3600)
    assert run("images", "prune-changes").exit_code == 0
    first = _page(client, token, limit=1)
    assert [entry["id"] for entry in first["changes"]] == [A]
    assert [entry["id"] for entry in _follow(client, token, first["cursor"], 1)[0]] == [B, C]


def _forged(cursor, byte, value):
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[byte] = value
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_bad_cursors_and_limits_are_400s_naming_what_is_wrong(app, client, run, make_token):
    token = make_token("p1")
    _import(run, import_line(id=A))
    cursor = _page(client, token)["cursor"]
    state = _state(app)
    foreign = cursors.encode(cursors.Position(1, 1, cursors.LAST_ID), uuid.uuid4(), b"k" * 32)
    expected = {
        "not-a-cursor!": "not base64url",
        "YWJj": "not a whole cursor",
        cursor[:-3]: "not a whole cursor",
        _forged(cursor, 20, 0): "it was altered",
        foreign: "issued by another image catalogue",
    }
    for bad, reason in expected.items():
        message = error_message(_changes(client, token, since=bad), 400)
        assert message.startswith("Bad value passed to since:") and reason in message, message
    assert "limit" in error_message(_changes(client, token, limit=-1), 400)
    assert "limit" in error_message(_changes(client, token, limit="many"), 400)
    # A huge limit is clamped, as the listing's is.
    assert len(_page(client, token, limit=10**30)["changes"]) == 1
    assert state.deployment  # the cursor above was this catalogue's


def test_limit_0_answers_an_empty_page_and_the_same_position(client, run, make_token):
    token = make_token("p1")
    _import(run, import_line(id=A))
    first = _page(client, token, limit=1)
    empty = _page(client, token, first["cursor"], 0)
    assert empty == {"changes": [], "cursor": first["cursor"]}


def test_the_feed_needs_a_token_and_is_503_while_the_database_is_down(make_app, client):
    assert error_message(client.get("/v1/images/changes"), 401)
    down = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:9/none", DB_CONNECT_TIMEOUT=1)
    response = down.test_client().get("/v1/images/changes", headers={"X-Auth-Token": "t"})
    assert error_message(response, 503) and response.headers["Retry-After"] == "1"


def test_head_and_writes_on_the_feed_are_405(client, make_token):
    headers = {"X-Auth-Token": make_token()}
    assert client.head("/v1/images/changes", headers=headers).status_code == 405
    assert client.post("/v1/images/changes", headers=headers).status_code == 405


def test_the_listing_is_unchanged_by_the_feed(client, run, make_token, list_images):
    _import(run, import_line(id=A))
    assert image_ids(list_images(path=DETAIL, token=make_token("p1"))) == [A]
