"""ETags, 304s and answers given again: never after a change, without the query when unchanged."""

import pytest
import sqlalchemy as sa
from flask import request

from app.db import db
from app.db.reads import Reader
from app.loading.upsert import WRITTEN_COLUMNS, cursor_of
from app.web.answers import Answer, AnswerCache
from helpers import DETAIL, REQUESTS_TOTAL, error_message, import_line, served_total

A, B = "aaaaaaaa-0000-4000-8000-000000000000", "bbbbbbbb-0000-4000-8000-000000000000"
PATHS = [DETAIL, "/v1/images", f"/v1/images/{A}/members", "/v1/images/changes"]


def _import(run, *lines):
    result = run("images", "import", "-", input="".join(line + "\n" for line in lines))
    assert result.exit_code == 0, result.output


def _get(client, path, token, etag=None):
    headers = {"X-Auth-Token": token}
    if etag is not None:
        headers["If-None-Match"] = etag
    return client.get(path, headers=headers)


@pytest.fixture
def statements(monkeypatch):
    """The SQL statements the read path sends, from now on."""
    sent = []
    rows = Reader.rows

    def recorded(self, sql, parameters=None):
        sent.append(sql)
        return rows(self, sql, parameters)

    monkeypatch.setattr(Reader, "rows", recorded)
    return sent


@pytest.mark.parametrize("path", PATHS)
def test_an_unchanged_answer_is_a_304_that_reads_one_row(client, run, make_token, path, statements):
    _import(run, import_line(id=A, owner="p1", members=["p2"]))
    token = make_token("p1")
    first = _get(client, path, token)
    assert first.status_code == 200 and first.headers["ETag"].startswith('"')
    statements.clear()
    again = _get(client, path, token, first.headers["ETag"])
    assert (again.status_code, again.get_data(), again.headers["ETag"]) == (
        304,
        b"",
        first.headers["ETag"],
    )
    # The token is cached; the change number is the only read.
    assert [sql.split("FROM", 1)[1].split()[0] for sql in statements] == ["catalogue_state"]


CHANGES = {
    "an image added": [import_line(id=B, owner="p1")],
    "a field changed": [import_line(id=A, owner="p1", members=["p2"], name="renamed")],
    "a property": [import_line(id=A, owner="p1", members=["p2"], properties={"k": "v"})],
    "a member added": [import_line(id=A, owner="p1", members=["p2", "p3"])],
    "a member removed": [import_line(id=A, owner="p1", members=[])],
    "can_share": [import_line(id=A, owner="p1", members=[{"member": "p2", "can_share": True}])],
    "hidden": [import_line(id=A, owner="p1", members=["p2"], hidden=True)],
    "deleted": [import_line(id=A, owner="p1", status="deleted", deleted=True)],
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("path", PATHS)
def test_every_kind_of_change_gives_a_200_and_a_new_etag(client, run, make_token, path, change):
    _import(run, import_line(id=A, owner="p1", members=["p2"]))
    token = make_token("p1")
    first = _get(client, path, token)
    _import(run, *CHANGES[change])
    after = _get(client, path, token, first.headers["ETag"])
    assert after.status_code in (200, 404), after.get_data(as_text=True)
    assert after.headers.get("ETag") != first.headers["ETag"]


def test_a_write_outside_the_catalogues_writers_changes_the_etag_too(app, client, run, make_token):
    _import(run, import_line(id=A, owner="p1"))
    token = make_token("p1")
    first = _get(client, DETAIL, token)
    with app.app_context():
        db.session.execute(sa.text("UPDATE images SET name = 'by hand'"))
        db.session.commit()
    after = _get(client, DETAIL, token, first.headers["ETag"])
    assert after.status_code == 200 and after.get_json()["images"][0]["name"] == "by hand"


def test_a_previous_releases_loader_still_writes_and_changes_the_etag(app, client, run, make_token):
    # What a 1.2 loader (still running during an upgrade) sends: it stages rows in a table
    # made LIKE images (its NOT NULLs, not its defaults) and COPYs no change number.
    _import(run, import_line(id=A, owner="p1"))
    token = make_token("p1")
    first = _get(client, DETAIL, token)
    columns = ", ".join(WRITTEN_COLUMNS)
    with app.app_context():
        cursor = cursor_of(db.session)
        cursor.execute(
            "CREATE TEMP TABLE staged_images (LIKE images, position bigint) ON COMMIT DROP"
        )
        cursor.execute(
            f"INSERT INTO staged_images ({columns}, position) SELECT {columns}, 1 FROM images"
        )
        cursor.execute(
            "UPDATE images SET name = 'by 1.2' FROM staged_images"
            " WHERE staged_images.id = images.id"
        )
        db.session.commit()
    after = _get(client, DETAIL, token, first.headers["ETag"])
    assert after.status_code == 200 and after.get_json()["images"][0]["name"] == "by 1.2"


def test_each_caller_and_each_question_has_its_own_etag(client, run, make_token):
    _import(run, import_line(id=A, owner="p1"))
    p1, p2, admin = make_token("p1"), make_token("p2"), make_token("p9", roles=("admin",))
    tags = {
        (token, path): _get(client, path, token).headers["ETag"]
        for token in (p1, p2, admin)
        for path in (DETAIL, f"{DETAIL}?limit=1", "/v1/images")
    }
    assert len(set(tags.values())) == len(tags)
    # Another token of the same project asks the same question.
    assert _get(client, DETAIL, make_token("p1")).headers["ETag"] == tags[(p1, DETAIL)]


def test_if_none_match_star_lists_and_garbage(client, run, make_token):
    _import(run, import_line(id=A))
    token = make_token("p1")
    etag = _get(client, DETAIL, token).headers["ETag"]
    assert _get(client, DETAIL, token, "*").status_code == 304
    assert _get(client, DETAIL, token, f'"other", {etag}').status_code == 304
    assert _get(client, DETAIL, token, f"W/{etag}").status_code == 304
    for garbage in ('"other"', "garbage", '"unterminated', ",,,", "\u00e9"):
        response = _get(client, DETAIL, token, garbage)
        assert response.status_code == 200 and response.headers["ETag"] == etag


def test_image_show_keeps_glances_etag_and_never_answers_304(client, run, make_token):
    _import(run, import_line(id=A))
    token = make_token("p1")
    shown = client.head(f"/v1/images/{A}", headers={"X-Auth-Token": token})
    assert shown.headers["Etag"] == "64d7c1cd2b6f60c92c14662941cb7913"
    again = client.head(
        f"/v1/images/{A}", headers={"X-Auth-Token": token, "If-None-Match": shown.headers["Etag"]}
    )
    assert again.status_code == 200


def test_a_repeated_question_is_answered_again_without_its_query(
    client, run, make_token, statements
):
    _import(run, import_line(id=A))
    token = make_token("p1")
    first = _get(client, DETAIL, token)
    statements.clear()
    again = _get(client, DETAIL, token)
    assert again.get_data() == first.get_data() and again.headers["ETag"] == first.headers["ETag"]
    assert len(statements) == 1 and "catalogue_state" in statements[0]


def test_a_change_is_seen_by_the_next_request_of_every_worker(make_app, app, run, make_token):
    workers = [make_app().test_client() for _ in range(2)]
    token = make_token("p1")
    _import(run, import_line(id=A, name="before"))
    for worker in workers:
        assert _get(worker, DETAIL, token).get_json()["images"][0]["name"] == "before"
    _import(run, import_line(id=A, name="after"))
    for worker in workers:
        assert _get(worker, DETAIL, token).get_json()["images"][0]["name"] == "after"


def test_answers_are_not_kept_with_answer_cache_bytes_0(make_app, app, run, make_token, statements):
    client = make_app(ANSWER_CACHE_BYTES=0).test_client()
    _import(run, import_line(id=A))
    token = make_token("p1")
    _get(client, DETAIL, token)
    statements.clear()
    assert _get(client, DETAIL, token).status_code == 200
    assert len(statements) == 2


def test_a_bad_request_is_still_a_400_whatever_if_none_match_says(client, make_token):
    response = _get(client, f"{DETAIL}?limit=-1", make_token(), "*")
    assert error_message(response, 400)


def _given(body, number=1):
    return Answer(number, "tag", body, "/v1/images/detail", False, 0.0, "")


def test_the_answer_cache_keeps_recent_answers_within_its_bytes():
    cache = AnswerCache(max_bytes=10 + 2 * AnswerCache.ENTRY_BYTES)
    cache.put("a", _given(b"1234"))
    cache.put("b", _given(b"1234"))
    assert cache.get("a", 1).body == b"1234"  # now the most recent
    cache.put("c", _given(b"1234"))  # pushes out b, the least recently used
    assert [cache.get(key, 1) is not None for key in "abc"] == [True, False, True]
    assert cache.get("a", 2) is None  # an answer of an older change number is never given
    cache.put("big", _given(b"x" * cache.max_bytes))
    assert cache.get("big", 1) is None and cache.size <= cache.max_bytes


@pytest.fixture
def asked_again(client, run, make_token):
    """(token, the first answer) of a listing asked once, now kept by the worker."""
    _import(run, import_line(id=A))
    token = make_token("p1")
    return token, _get(client, DETAIL, token)


def test_an_answer_given_again_has_the_first_ones_headers(client, asked_again):
    token, first = asked_again
    again = client.get(DETAIL, headers={"X-Auth-Token": token, "X-Openstack-Request-Id": "r1"})
    assert again.get_data() == first.get_data()
    assert dict(again.headers) == {**dict(first.headers), "X-Openstack-Request-Id": "req-r1"}
    not_modified = _get(client, DETAIL, token, first.headers["ETag"])
    names = {name for name, _ in first.headers} - {"Content-Type", "Content-Length"}
    assert {name for name, _ in not_modified.headers} - {"Content-Length"} == names


def test_answers_are_given_again_to_the_same_credentials_and_host_only(
    client, asked_again, make_token, statements
):
    token, first = asked_again
    other_token = make_token("p1")  # the same project, another token: asked anew
    assert _get(client, DETAIL, other_token).get_data() == first.get_data()
    assert any("api_tokens" in sql for sql in statements)
    bad_host = client.get(DETAIL, headers={"X-Auth-Token": token, "Host": "evil.example"})
    assert bad_host.status_code == 200  # no allowed_hosts here: Flask answered it
    huge = client.get(DETAIL, headers={"X-Auth-Token": token, "X-Padding": "x" * 9000})
    assert huge.status_code == 431


def test_a_revoked_token_is_not_answered_once_its_cache_time_is_over(
    make_app, app, run, make_token
):
    client = make_app(TOKEN_CACHE_SECONDS=0).test_client()
    _import(run, import_line(id=A))
    token = make_token("p1")
    assert _get(client, DETAIL, token).status_code == 200
    assert run("tokens", "revoke", token).exit_code == 0
    assert _get(client, DETAIL, token).status_code == 401


def test_answers_are_given_again_in_front_of_flask_after_the_token_was_checked_again(
    app, client, asked_again, statements, monkeypatch
):
    token, first = asked_again
    dispatch, reached_flask = app.full_dispatch_request, []

    def counted():
        reached_flask.append(request.path)
        return dispatch()

    monkeypatch.setattr(app, "full_dispatch_request", counted)
    cache = app.extensions["token_cache"]
    now = [cache.clock()]
    cache.clock = lambda: now[0]
    assert _get(client, DETAIL, token).get_data() == first.get_data()
    assert reached_flask == []
    now[0] += cache.seconds + 1  # the token's cache time is over: Flask checks it again
    assert _get(client, DETAIL, token).get_data() == first.get_data()
    assert reached_flask == [DETAIL] and any("api_tokens" in sql for sql in statements)
    assert _get(client, DETAIL, token).get_data() == first.get_data()
    assert reached_flask == [DETAIL]  # given again in front of Flask, as before


def test_answers_given_again_are_counted_by_route_and_status(client, asked_again):
    token, first = asked_again
    before = served_total(client, REQUESTS_TOTAL, route=DETAIL, status="304")
    for _ in range(3):
        assert _get(client, DETAIL, token, first.headers["ETag"]).status_code == 304
    assert served_total(client, REQUESTS_TOTAL, route=DETAIL, status="304") == before + 3
